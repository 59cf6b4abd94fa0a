#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cross-builds sluice for arm64 (Raspberry Pi 3/4/5 with a 64-bit OS, other aarch64 boards) on an
# amd64 Debian 12 machine, and proves the result runs:
#   1. installs Debian's cross toolchain, qemu-user and the arm64 variant of every library in
#      scripts/install-deps.sh (multiarch: libfoo-dev:arm64 beside libfoo-dev:amd64),
#   2. builds sluice, sluice-sim, sluice-verify and the unit tests with cmake/aarch64-linux-gnu.cmake,
#   3. runs the unit tests and `sluice --version` under qemu-user,
#   4. builds the arm64 .deb with CPack and checks its contents and that its sluice runs.
# Usage: scripts/cross-arm64.sh [--deps-only] [--build-dir DIR]   (default DIR: build/arm64)
# Idempotent: when everything is installed apt is not touched, and the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build_dir=build/arm64
deps_only=0
while (($#)); do
  case "$1" in
    --deps-only) deps_only=1 ;;
    --build-dir)
      build_dir=$2
      shift
      ;;
    *)
      echo "usage: $0 [--deps-only] [--build-dir DIR]" >&2
      exit 2
      ;;
  esac
  shift
done

step() { printf '\n==> cross-arm64: %s\n' "$*"; }

sudo=()
if ((EUID != 0)); then
  sudo=(sudo -n)
fi
apt_get() {
  # Other apt runs (unattended upgrades, a parallel install) hold the lock for a while: wait.
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 "$@" </dev/null
}
installed() { [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null || true)" == ii* ]]; }

step "native dependencies"
scripts/install-deps.sh

step "cross toolchain and arm64 libraries"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  "${sudo[@]}" dpkg --add-architecture arm64
fi
# After adding the architecture the package lists have no arm64 entries until the next update.
updated=0
if ! apt-cache show --no-all-versions libc6:arm64 >/dev/null 2>&1; then
  apt_get update
  updated=1
fi
# Every library the project links: the -dev packages of install-deps.sh that are built per
# architecture. Architecture "all" ones (header-only: doctest, CLI11, nlohmann-json) are
# Multi-Arch: foreign, so the native install serves the cross build too.
wanted=(g++-aarch64-linux-gnu qemu-user)
while read -r pkg; do
  [[ "$pkg" == *-dev ]] || continue
  arch=$(apt-cache show --no-all-versions "$pkg" | awk '/^Architecture:/ { print $2; exit }')
  [[ "$arch" == all ]] || wanted+=("$pkg:arm64")
done < <(scripts/install-deps.sh --print-packages)
missing=()
for pkg in "${wanted[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "cross-arm64: all ${#wanted[@]} packages already installed"
else
  echo "cross-arm64: installing: ${missing[*]}"
  # The lists may be older than the native packages installed since (a Multi-Arch: same pair must
  # have the same version on both architectures), so refresh them once before installing.
  ((updated)) || apt_get update
  apt_get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
fi
((deps_only)) && exit 0

step "configure and build ($build_dir)"
# -O2 as Debian builds its packages (CMake's Release means -O3). Only the installed programs and the
# executables of the tests labelled "unit" are built: the integration tests and benchmarks need
# brokers and do not run under qemu (cpack packages what the install rules name, building nothing).
cmake -S "$root" -B "$build_dir" -G Ninja -DSLUICE_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" >/dev/null
# CTest runs test targets through the emulator; their executables are Ninja targets by their path
# relative to the build directory.
abs_build_dir=$(cd "$build_dir" && pwd)
mapfile -t unit_exes < <(cd "$build_dir" && ctest -N -V -L unit |
  sed -n "s|^[0-9]*: Test command: [^ ]*qemu-aarch64 \"$abs_build_dir/\([^\"]*\)\".*|\1|p")
if ((${#unit_exes[@]} == 0)); then
  echo "cross-arm64: found no unit test executables in $build_dir" >&2
  exit 1
fi
cmake --build "$build_dir" -j "$(nproc)" --target sluice sluice-sim sluice-verify "${unit_exes[@]}"

machine=$(LC_ALL=C readelf -h "$build_dir/gateway/sluice" | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }')
if [[ "$machine" != AArch64 ]]; then
  echo "cross-arm64: $build_dir/gateway/sluice is built for '$machine', not AArch64" >&2
  exit 1
fi

step "unit tests under qemu-aarch64"
(cd "$build_dir" && ctest -L unit --output-on-failure --timeout 900)

step "sluice --version under qemu-aarch64"
version=$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
got=$(qemu-aarch64 "$build_dir/gateway/sluice" --version)
if [[ "$got" != "sluice $version" ]]; then
  echo "cross-arm64: sluice --version printed '$got', expected 'sluice $version'" >&2
  exit 1
fi
echo "$got"

step "arm64 .deb"
deb=$(scripts/package-deb.sh --build-dir "$build_dir")
scripts/check-deb.sh --run-with qemu-aarch64 --lintian "$deb"
