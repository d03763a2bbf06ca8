# Cross build for 64-bit Arm Linux with Debian's cross compiler (g++-aarch64-linux-gnu) and the
# arm64 multi-arch packages (libhwy-dev:arm64): scripts/setup-arm64.sh installs both, and
# scripts/test-arm64.sh configures with -DCMAKE_TOOLCHAIN_FILE=<this file>.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TESSERA_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${TESSERA_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${TESSERA_CROSS_TRIPLE}-g++)

# Multi-arch puts the arm64 libraries beside the host's, in /usr/lib/aarch64-linux-gnu, and
# their headers in /usr/include: the cross compiler searches both, so no sysroot is needed.
# CMake's find_* calls look in the host's prefixes too; the arch-specific library folder keeps
# the arm64 libraries apart, and headers are shared (multi-arch "same" packages).
set(CMAKE_LIBRARY_ARCHITECTURE ${TESSERA_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# pkg-config (Highway is found through it) must read the arm64 .pc files, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${TESSERA_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# ctest and try_run start target programs through qemu when it is there. No -L prefix: the
# programs load the multi-arch arm64 C library (/lib/ld-linux-aarch64.so.1), the one the arm64
# packages' libraries were built against (scripts/setup-arm64.sh says why).
find_program(TESSERA_QEMU_AARCH64 qemu-aarch64)
if(TESSERA_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${TESSERA_QEMU_AARCH64})
endif()
