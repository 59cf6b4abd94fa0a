#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds sluice's Debian package from a configured and built build directory (cpack -G DEB; the
# package is described in cmake/Packaging.cmake) and prints the path of the .deb on stdout.
# Usage: scripts/package-deb.sh [--build-dir DIR]   (default DIR: build/ci)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build/ci
while (($#)); do
  case "$1" in
    --build-dir)
      build_dir=$2
      shift
      ;;
    *)
      echo "usage: $0 [--build-dir DIR]" >&2
      exit 2
      ;;
  esac
  shift
done
if [[ ! -f "$build_dir/CPackConfig.cmake" ]]; then
  echo "package-deb: $build_dir is not a configured sluice build directory (no CPackConfig.cmake)" >&2
  exit 2
fi
build_dir=$(cd "$build_dir" && pwd)

# cpack announces each package it writes; everything it says goes to stderr so that stdout is
# only the path.
log=$(cd "$build_dir" && cpack -G DEB 2>&1) || {
  printf '%s\n' "$log" >&2
  echo "package-deb: cpack failed in $build_dir" >&2
  exit 1
}
printf '%s\n' "$log" >&2
deb=$(printf '%s\n' "$log" | sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$/\1/p')
if [[ -z "$deb" || ! -f "$deb" ]]; then
  echo "package-deb: cpack did not report a .deb in $build_dir" >&2
  exit 1
fi
printf '%s\n' "$deb"
