# Detection of optional backends and tools, and the one configure summary.
include(CheckLanguage)

set(TESSERA_SUMMARY "")
macro(tessera_summary name value)
  list(APPEND TESSERA_SUMMARY "${name}|${value}")
endmacro()

# An AUTO/ON/OFF switch: AUTO takes what is found, ON fails when it is missing.
function(tessera_resolve_switch var found detail out_var)
  string(TOUPPER "${${var}}" want)
  if(want STREQUAL "OFF" OR want STREQUAL "NO" OR want STREQUAL "FALSE" OR want STREQUAL "0")
    set(${out_var} OFF PARENT_SCOPE)
    tessera_summary(${var} "off (disabled)")
  elseif(found)
    set(${out_var} ON PARENT_SCOPE)
    tessera_summary(${var} "on (${detail})")
  elseif(want STREQUAL "AUTO")
    set(${out_var} OFF PARENT_SCOPE)
    tessera_summary(${var} "off (${detail})")
  else()
    message(FATAL_ERROR "${var}=ON but ${detail}")
  endif()
  set(TESSERA_SUMMARY "${TESSERA_SUMMARY}" PARENT_SCOPE)
endfunction()

# ---- the HTTP server (tessera serve) ----
set(_server_found FALSE)
set(_server_detail "cpp-httplib or nlohmann-json not found: apt-get install libcpp-httplib-dev nlohmann-json3-dev")
if(NOT TESSERA_SERVER MATCHES "^(OFF|off|Off|NO|no|FALSE|false|0)$" AND TESSERA_BUILD_CLI)
  find_package(PkgConfig QUIET)
  find_package(nlohmann_json 3.10 QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(TESSERA_HTTPLIB QUIET IMPORTED_TARGET cpp-httplib>=0.11)
  endif()
  if(TESSERA_HTTPLIB_FOUND AND nlohmann_json_FOUND)
    set(_server_found TRUE)
    set(_server_detail "cpp-httplib ${TESSERA_HTTPLIB_VERSION}, nlohmann-json ${nlohmann_json_VERSION}")
  endif()
endif()
tessera_resolve_switch(TESSERA_SERVER ${_server_found} "${_server_detail}" TESSERA_HAVE_SERVER)

# ---- CUDA ----
# The toolkit is detected here; the language is enabled only where a backend has
# CUDA sources to compile (backends/cuda).
set(_cuda_found FALSE)
set(_cuda_detail "no CUDA compiler found")
if(NOT TESSERA_CUDA MATCHES "^(OFF|off|Off|NO|no|FALSE|false|0)$")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(_cuda_found TRUE)
    set(_cuda_detail "${CMAKE_CUDA_COMPILER}")
  endif()
endif()
# Turing to Hopper as machine code, plus PTX for newer GPUs (the driver compiles it at
# start). CI narrows the list to one to keep its build short.
set(TESSERA_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90-real;90-virtual" CACHE STRING
  "GPU architectures the CUDA backend is compiled for (CMake's CUDA_ARCHITECTURES syntax)")
if(_cuda_found)
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND)
    set(_cuda_found FALSE)
    set(_cuda_detail "nvcc at ${CMAKE_CUDA_COMPILER}, but CMake's FindCUDAToolkit found no runtime library")
  else()
    set(_cuda_detail "CUDA ${CUDAToolkit_VERSION}, architectures ${TESSERA_CUDA_ARCHITECTURES}")
  endif()
endif()
tessera_resolve_switch(TESSERA_CUDA ${_cuda_found} "${_cuda_detail}" TESSERA_HAVE_CUDA)
if(TESSERA_HAVE_CUDA)
  # The GPUs of this machine, for the summary (the binary itself asks the driver at run time).
  find_program(TESSERA_NVIDIA_SMI nvidia-smi)
  set(_gpus "")
  if(TESSERA_NVIDIA_SMI)
    execute_process(COMMAND ${TESSERA_NVIDIA_SMI} --query-gpu=name,memory.total --format=csv,noheader
      OUTPUT_VARIABLE _gpus ERROR_QUIET RESULT_VARIABLE _smi_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT _smi_rc EQUAL 0)
      set(_gpus "")
    endif()
  endif()
  if(_gpus)
    string(REPLACE "\n" " / " _gpus "${_gpus}")
    tessera_summary("  CUDA devices" "${_gpus}")
  else()
    tessera_summary("  CUDA devices" "none on this machine (binaries still use one where there is one)")
  endif()
endif()

# ---- Vulkan ----
# The headers and loader, and a GLSL compiler for the shaders (glslc, else glslangValidator).
set(_vk_found FALSE)
set(_vk_detail "no Vulkan headers, loader or GLSL compiler (glslc, glslangValidator) found")
if(NOT TESSERA_VULKAN MATCHES "^(OFF|off|Off|NO|no|FALSE|false|0)$")
  # The loader is opened at run time, so only the headers are needed to build: a cross
  # build compiles the backend too.
  find_path(TESSERA_VULKAN_INCLUDE vulkan/vulkan.h)
  find_program(TESSERA_GLSLC glslc)
  find_program(TESSERA_GLSLANG glslangValidator)
  if(TESSERA_VULKAN_INCLUDE AND (TESSERA_GLSLC OR TESSERA_GLSLANG))
    set(_vk_found TRUE)
    set(Vulkan_INCLUDE_DIRS ${TESSERA_VULKAN_INCLUDE})
    if(TESSERA_GLSLC)
      set(_vk_compiler ${TESSERA_GLSLC})
    else()
      set(_vk_compiler ${TESSERA_GLSLANG})
    endif()
    # Cooperative matrices (tensor cores through Vulkan) need a compiler that knows
    # GL_KHR_cooperative_matrix: glslang 13 (scripts/setup.sh unpacks it into the cache), or
    # a system glslangValidator or glslc new enough. The first that compiles a small
    # cooperative-matrix shader compiles the shaders that use them.
    if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
      set(_vk_cache "$ENV{XDG_CACHE_HOME}")
    else()
      set(_vk_cache "$ENV{HOME}/.cache")
    endif()
    find_program(TESSERA_GLSLANG_CM glslangValidator PATHS ${_vk_cache}/tessera/glslang-13.1.1/bin NO_DEFAULT_PATH)
    set(_vk_probe ${CMAKE_CURRENT_BINARY_DIR}/vulkan_coopmat_probe.comp)
    file(WRITE ${_vk_probe} "#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
layout(binding = 0) buffer Y { float y[]; };
shared float16_t s[256];
void main() {
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> b;
    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> c =
        coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
    coopMatLoad(a, s, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
    coopMatLoad(b, s, 0, 16, gl_CooperativeMatrixLayoutColumnMajor);
    coopMatStore(coopMatMulAdd(a, b, c), y, 0, 16, gl_CooperativeMatrixLayoutColumnMajor);
}
")
    set(TESSERA_VK_COOPMAT_COMPILER "")
    foreach(_c ${TESSERA_GLSLANG_CM} ${TESSERA_GLSLANG} ${TESSERA_GLSLC})
      if(NOT _c OR TESSERA_VK_COOPMAT_COMPILER)
        continue()
      endif()
      if(_c MATCHES "glslc$")
        set(_args --target-env=vulkan1.2)
      else()
        set(_args -V --target-env vulkan1.2)
      endif()
      execute_process(COMMAND ${_c} ${_args} ${_vk_probe} -o ${_vk_probe}.spv RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
      if(_rc EQUAL 0)
        set(TESSERA_VK_COOPMAT_COMPILER ${_c})
      endif()
    endforeach()
    set(_vk_detail "headers in ${TESSERA_VULKAN_INCLUDE}, shaders by ${_vk_compiler}, shader features: baseline (Vulkan 1.2, 32-bit storage), subgroup sums, integer dot products (SPV_KHR_integer_dot_product through GL_EXT_spirv_intrinsics)")
    if(TESSERA_VK_COOPMAT_COMPILER)
      string(APPEND _vk_detail ", cooperative matrices (by ${TESSERA_VK_COOPMAT_COMPILER})")
    else()
      string(APPEND _vk_detail ", no cooperative matrices (no compiler here knows GL_KHR_cooperative_matrix: scripts/setup.sh fetches glslang 13)")
    endif()
  endif()
endif()
if(_vk_found AND NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/backends/vulkan/vulkan_backend.cpp)
  set(_vk_found FALSE)
  set(_vk_detail "Vulkan headers found, but this tree has no Vulkan backend yet")
endif()
tessera_resolve_switch(TESSERA_VULKAN ${_vk_found} "${_vk_detail}" TESSERA_HAVE_VULKAN)

# ---- BLAS: GEMM libraries for prompts on float weights where the CPU has no interleaved (r16)
# float kernel, i.e. without AVX-512 (oneDNN's matmul, else OpenBLAS's sgemm), and oneDNN's
# AMX BF16 tiles for BF16 weights. backends/cpu/ops_matmul.cpp has the measurements behind the
# choice. auto: every one of them that is installed. ----
string(TOLOWER "${TESSERA_BLAS}" _blas_want)
if(NOT _blas_want MATCHES "^(auto|openblas|onednn|off)$")
  message(FATAL_ERROR "TESSERA_BLAS must be auto, openblas, onednn or off (got '${TESSERA_BLAS}')")
endif()
set(TESSERA_HAVE_OPENBLAS FALSE)
set(TESSERA_HAVE_ONEDNN FALSE)
if(_blas_want MATCHES "^(auto|openblas)$")
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS QUIET)
  find_path(TESSERA_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas)
  if(BLAS_FOUND AND TESSERA_CBLAS_INCLUDE)
    set(TESSERA_HAVE_OPENBLAS TRUE)
  elseif(_blas_want STREQUAL "openblas")
    message(FATAL_ERROR "TESSERA_BLAS=openblas but OpenBLAS was not found (apt-get install libopenblas-dev)")
  endif()
endif()
if(_blas_want MATCHES "^(auto|onednn)$")
  find_path(TESSERA_DNNL_INCLUDE oneapi/dnnl/dnnl.hpp)
  find_library(TESSERA_DNNL_LIBRARY dnnl)
  if(TESSERA_DNNL_INCLUDE AND TESSERA_DNNL_LIBRARY)
    set(TESSERA_HAVE_ONEDNN TRUE)
  elseif(_blas_want STREQUAL "onednn")
    message(FATAL_ERROR "TESSERA_BLAS=onednn but oneDNN was not found (apt-get install libdnnl-dev)")
  endif()
endif()
set(_blas_found "")
if(TESSERA_HAVE_OPENBLAS)
  list(APPEND _blas_found "openblas")
endif()
if(TESSERA_HAVE_ONEDNN)
  list(APPEND _blas_found "onednn")
endif()
list(JOIN _blas_found ", " _blas_found)
if(_blas_want STREQUAL "off")
  tessera_summary(TESSERA_BLAS "off (disabled)")
elseif(_blas_found)
  tessera_summary(TESSERA_BLAS "${_blas_found} (prompts on F32/F16/BF16 weights without AVX-512, BF16 on AMX)")
else()
  tessera_summary(TESSERA_BLAS "off (neither found: apt-get install libopenblas-dev libdnnl-dev)")
endif()

# ---- OpenMP ----
find_package(OpenMP QUIET COMPONENTS CXX)
if(OpenMP_CXX_FOUND)
  tessera_summary(OpenMP "on (${OpenMP_CXX_VERSION})")
else()
  tessera_summary(OpenMP "off (not found; CPU backend runs single-threaded)")
endif()

# ---- Highway (required): the CPU kernels are compiled for several instruction sets and
# the best one is chosen at run time (backends/cpu/kernels/hwy_config.h lists them) ----
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(HWY QUIET libhwy)
endif()
if(NOT HWY_FOUND)
  message(FATAL_ERROR "Highway (libhwy) not found; the CPU kernels need it (apt-get install libhwy-dev, or scripts/setup.sh)")
endif()
tessera_summary(Highway "${HWY_VERSION} (kernels for x86 SSE4, AVX2, AVX-512, +VNNI, scalar, Arm NEON, SVE, SVE2)")

# ---- sanitizers ----
# A fuzz build always runs with ASan+UBSan: a fuzzer finds crashes, the sanitizers turn
# silent memory errors into crashes.
if(TESSERA_FUZZ AND NOT TESSERA_SANITIZE)
  set(TESSERA_SANITIZE "address,undefined")
endif()
# TESSERA_SANITIZE=thread builds with ThreadSanitizer. It cannot be combined with address
# or leak, and libgomp is not instrumented for it: an OpenMP team gives false reports, so
# run TSan tests with one CPU thread per context (scripts/test.sh does).
set(TESSERA_SANITIZE_FLAGS "")
if(TESSERA_SANITIZE)
  string(REPLACE ";" "," _san "${TESSERA_SANITIZE}")
  if(_san MATCHES "thread" AND _san MATCHES "address|leak")
    message(FATAL_ERROR "TESSERA_SANITIZE=${_san}: thread cannot be combined with address or leak (use two builds)")
  endif()
  set(TESSERA_SANITIZE_FLAGS -fsanitize=${_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  tessera_summary(TESSERA_SANITIZE "${_san}")
else()
  tessera_summary(TESSERA_SANITIZE "off")
endif()

# ---- fuzzing ----
if(TESSERA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "TESSERA_FUZZ=ON needs clang (configure with CXX=clang++ CC=clang)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
  tessera_summary(TESSERA_FUZZ "on (libFuzzer)")
else()
  tessera_summary(TESSERA_FUZZ "off")
endif()

# Flags every Tessera target gets.
function(tessera_apply_options target)
  if(TESSERA_SANITIZE_FLAGS)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:${TESSERA_SANITIZE_FLAGS}>)
    target_link_options(${target} PRIVATE ${TESSERA_SANITIZE_FLAGS})
  endif()
  # The library's kernels use Highway: PUBLIC, as a static library hands its dependencies on.
  if(target STREQUAL "tessera")
    target_include_directories(tessera SYSTEM PUBLIC ${HWY_INCLUDE_DIRS})
    target_compile_options(tessera PUBLIC $<$<COMPILE_LANGUAGE:C,CXX>:${HWY_CFLAGS_OTHER}>)
    target_link_libraries(tessera PUBLIC ${HWY_LINK_LIBRARIES})
    if(TESSERA_HAVE_OPENBLAS)
      target_compile_definitions(tessera PRIVATE TESSERA_HAVE_OPENBLAS=1)
      target_include_directories(tessera SYSTEM PRIVATE ${TESSERA_CBLAS_INCLUDE})
      target_link_libraries(tessera PUBLIC ${BLAS_LIBRARIES})
    endif()
    if(TESSERA_HAVE_ONEDNN)
      target_compile_definitions(tessera PRIVATE TESSERA_HAVE_ONEDNN=1)
      target_include_directories(tessera SYSTEM PRIVATE ${TESSERA_DNNL_INCLUDE})
      target_link_libraries(tessera PUBLIC ${TESSERA_DNNL_LIBRARY})
    endif()
  endif()
endfunction()

function(tessera_print_summary)
  message(STATUS "")
  message(STATUS "Tessera ${PROJECT_VERSION} configuration")
  message(STATUS "  compiler          ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
  message(STATUS "  build type        ${CMAKE_BUILD_TYPE}")
  foreach(entry ${TESSERA_SUMMARY})
    string(REPLACE "|" ";" parts "${entry}")
    list(GET parts 0 name)
    list(GET parts 1 value)
    string(LENGTH "${name}" len)
    math(EXPR pad "18 - ${len}")
    if(pad LESS 1)
      set(pad 1)
    endif()
    string(REPEAT " " ${pad} spaces)
    message(STATUS "  ${name}${spaces}${value}")
  endforeach()
  message(STATUS "")
endfunction()
