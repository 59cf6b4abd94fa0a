# SPDX-License-Identifier: Apache-2.0
# Cross-compiles for 64-bit ARM Linux (Raspberry Pi 3/4/5 with a 64-bit OS, other aarch64 boards)
# with Debian's cross toolchain (g++-aarch64-linux-gnu) against arm64 libraries installed beside the
# native ones through multiarch (libfoo-dev:arm64 in /usr/lib/aarch64-linux-gnu). No sysroot: the
# cross compiler already searches /usr/include/aarch64-linux-gnu and /usr/lib/aarch64-linux-gnu.
# scripts/cross-arm64.sh installs all of it.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# CTest and add_test() run target executables through this, so the unit tests run under qemu-user.
# The arm64 dynamic loader and libraries come from the multiarch packages, so no -L is needed.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)

# Only arm64 .pc files, plus the architecture-independent ones (header-only libraries); the native
# ones in /usr/lib/x86_64-linux-gnu/pkgconfig would hand out amd64 libraries.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# The Debian architecture of the packages CPack builds (cmake/Packaging.cmake).
set(SLUICE_DEB_ARCHITECTURE arm64)
