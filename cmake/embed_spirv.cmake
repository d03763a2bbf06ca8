# Writes a SPIR-V binary (IN) as a C++ array (OUT) named tessera::vulkan::spirv::NAME, with
# NAME_size its length in bytes: the shaders are embedded in the library.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUT}" "// Generated from ${NAME}.comp by cmake/embed_spirv.cmake.\n#include <cstddef>\nnamespace tessera::vulkan::spirv {\nextern const unsigned char ${NAME}[] = {${body}};\nextern const size_t ${NAME}_size = ${bytes};\n}  // namespace tessera::vulkan::spirv\n")
