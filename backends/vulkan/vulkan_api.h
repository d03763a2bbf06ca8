// The Vulkan loader, opened at run time with dlopen (so a binary built with the backend runs
// where there is no Vulkan at all): the instance, its usable devices and the functions the
// backend calls, loaded through vkGetInstanceProcAddr.
#pragma once

// Vulkan's functions come from the loader opened at run time, never from linking.
#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

// VK_KHR_cooperative_matrix, for headers older than it (Debian 12's are 1.3.239): the
// structures and values of the Vulkan registry.
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_cooperative_matrix 1
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
constexpr VkStructureType VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR =
    static_cast<VkStructureType>(1000506000);
constexpr VkStructureType VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR =
    static_cast<VkStructureType>(1000506001);
typedef enum VkComponentTypeKHR {
    VK_COMPONENT_TYPE_FLOAT16_KHR = 0,
    VK_COMPONENT_TYPE_FLOAT32_KHR = 1,
    VK_COMPONENT_TYPE_MAX_ENUM_KHR = 0x7FFFFFFF
} VkComponentTypeKHR;
typedef enum VkScopeKHR { VK_SCOPE_SUBGROUP_KHR = 3, VK_SCOPE_MAX_ENUM_KHR = 0x7FFFFFFF } VkScopeKHR;
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void* pNext;
    uint32_t MSize;
    uint32_t NSize;
    uint32_t KSize;
    VkComponentTypeKHR AType;
    VkComponentTypeKHR BType;
    VkComponentTypeKHR CType;
    VkComponentTypeKHR ResultType;
    VkBool32 saturatingAccumulation;
    VkScopeKHR scope;
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void* pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef VkResult(VKAPI_PTR* PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice physicalDevice, uint32_t* pPropertyCount, VkCooperativeMatrixPropertiesKHR* pProperties);
#endif

#include <string>
#include <vector>

namespace tessera::vulkan {

#define TESSERA_VK_FUNCTIONS(X)                                                                                \
    X(vkDestroyInstance)                                                                                       \
    X(vkEnumeratePhysicalDevices)                                                                              \
    X(vkGetPhysicalDeviceProperties)                                                                           \
    X(vkGetPhysicalDeviceProperties2)                                                                          \
    X(vkGetPhysicalDeviceFeatures2)                                                                            \
    X(vkEnumerateDeviceExtensionProperties)                                                                    \
    X(vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)                                                       \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                                \
    X(vkGetPhysicalDeviceMemoryProperties)                                                                     \
    X(vkCreateDevice)                                                                                          \
    X(vkDestroyDevice)                                                                                         \
    X(vkGetDeviceQueue)                                                                                        \
    X(vkCreateBuffer)                                                                                          \
    X(vkDestroyBuffer)                                                                                         \
    X(vkGetBufferMemoryRequirements)                                                                           \
    X(vkAllocateMemory)                                                                                        \
    X(vkFreeMemory)                                                                                            \
    X(vkBindBufferMemory)                                                                                      \
    X(vkMapMemory)                                                                                             \
    X(vkCreateShaderModule)                                                                                    \
    X(vkDestroyShaderModule)                                                                                   \
    X(vkCreateDescriptorSetLayout)                                                                             \
    X(vkDestroyDescriptorSetLayout)                                                                            \
    X(vkCreatePipelineLayout)                                                                                  \
    X(vkDestroyPipelineLayout)                                                                                 \
    X(vkCreateComputePipelines)                                                                                \
    X(vkDestroyPipeline)                                                                                       \
    X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) X(vkAllocateDescriptorSets)  \
        X(vkUpdateDescriptorSets) X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers)   \
            X(vkResetCommandBuffer) X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkCmdBindPipeline)         \
                X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) X(vkCmdDispatch) X(vkCmdPipelineBarrier)      \
                    X(vkCmdCopyBuffer) X(vkCreateFence) X(vkDestroyFence) X(vkResetFences) X(vkGetFenceStatus) \
                        X(vkWaitForFences) X(vkQueueSubmit) X(vkDeviceWaitIdle) X(vkCreatePipelineCache)       \
                            X(vkDestroyPipelineCache) X(vkGetPipelineCacheData) X(vkCreateQueryPool)           \
                                X(vkDestroyQueryPool) X(vkCmdResetQueryPool) X(vkCmdWriteTimestamp)            \
                                    X(vkGetQueryPoolResults)

struct Api {
#define TESSERA_VK_DECLARE(f) PFN_##f f = nullptr;
    TESSERA_VK_FUNCTIONS(TESSERA_VK_DECLARE)
#undef TESSERA_VK_DECLARE
    VkInstance instance = VK_NULL_HANDLE;
    std::vector<VkPhysicalDevice> devices;  // usable ones
    std::string reason;                     // why there are none
};

// The loader, opened once; with no device where there is no Vulkan (reason says why).
const Api& api();

// A VkResult in words, for error messages.
const char* result_name(VkResult r);

// Throws tessera::Error (Internal) naming the call when r is not VK_SUCCESS.
void check(VkResult r, const char* what);

}  // namespace tessera::vulkan
