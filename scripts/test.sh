#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs sluice's whole test suite:
#   1. installs the Debian packages (scripts/install-deps.sh) and fetches the Kafka broker's jars,
#   2. builds with warnings as errors and runs every test: unit tests and the integration tests
#      against a real Mosquitto and a real Kafka broker (started and stopped by CTest fixtures),
#   3. runs the demo (scripts/demo.sh --short),
#   4. builds with ASan+UBSan and with TSan and runs the unit tests under each.
# Usage: scripts/test.sh            (SLUICE_TEST_QUICK=1 skips the sanitizer builds)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies"
scripts/install-deps.sh
scripts/kafka.sh fetch

step "clang-format check"
unformatted=$(git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c warning || true)
if [[ "$unformatted" != 0 ]]; then
  git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run 2>&1 | head -20
  echo "clang-format: $unformatted places differ from .clang-format" >&2
  exit 1
fi

build() {  # build DIR [cmake args...]
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -G Ninja -DSLUICE_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

step "release build (-Werror)"
build build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo
step "unit and integration tests"
(cd build/ci && ctest --output-on-failure --timeout 900)

step "the demo, shortened (so that the README's main command cannot rot)"
scripts/demo.sh --short

if [[ "${SLUICE_TEST_QUICK:-0}" != 1 ]]; then
  step "ASan+UBSan build: unit tests"
  build build/asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=address
  (cd build/asan && ctest -L unit --output-on-failure)
  step "TSan build: unit tests"
  build build/tsan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=thread
  (cd build/tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ctest -L unit --output-on-failure)
fi
step "all tests passed"
