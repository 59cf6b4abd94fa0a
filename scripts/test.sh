#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up a fresh Debian 12 machine and runs sluice's whole test suite:
#   1. installs the Debian packages (scripts/install-deps.sh), fetches the Kafka broker's jars
#      (Maven) and the Kinesis test server, kinesalite (npm),
#   2. builds with warnings as errors and runs every test: unit tests and the integration tests
#      against a real Mosquitto and a real Kafka broker (started and stopped by CTest fixtures),
#   3. runs the demo (scripts/demo.sh --short) and a benchmark smoke run (bench/run.sh --smoke),
#   4. builds with ASan+UBSan and with TSan and runs the unit tests under each,
#   5. fuzzes the parsers of outside input for a bounded time (tests/fuzz/run.sh),
#   6. builds the Debian package and installs it into a throwaway Debian 12 root
#      (scripts/package-test.sh), then boots such a root with systemd as PID 1 in a container and
#      drives the installed unit with systemctl (scripts/systemd-test.sh); cross-builds for arm64,
#      runs the unit tests under qemu and checks the arm64 package (scripts/cross-arm64.sh).
# Steps 4, 5 and the arm64 build are CPU work, while CTest and the steps after it mostly wait on
# brokers: they run beside those, at idle CPU priority (SCHED_IDLE), and their log follows at the end.
# Usage: scripts/test.sh            (SLUICE_TEST_QUICK=1 skips steps 4, 5 and the arm64 build;
#                                    SLUICE_TEST_SERIAL=1 runs them after the others instead)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

# Each step prints how long the one before it took, and the run ends with the list, so that the
# minutes of a CI run can be spent where the risk is.
started=$SECONDS
step_name=""
step_started=$SECONDS
durations=()
end_step() {
  [[ -n "$step_name" ]] || return 0
  local took=$((SECONDS - step_started))
  durations+=("$(printf '%4d:%02d  %s' $((took / 60)) $((took % 60)) "$step_name")")
  printf -- '--- %s: %d:%02d\n' "$step_name" $((took / 60)) $((took % 60))
}
step() {
  end_step
  step_name=$*
  step_started=$SECONDS
  printf '\n==> %s\n' "$*"
}

quick=${SLUICE_TEST_QUICK:-0}
step "installing dependencies"
scripts/install-deps.sh
scripts/kafka.sh fetch
scripts/kinesis.sh fetch
# Before anything runs beside the tests: apt holds a lock that the package test also takes.
[[ "$quick" == 1 ]] || scripts/cross-arm64.sh --deps-only

step "clang-format and licence header check"
unformatted=$(git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c warning || true)
if [[ "$unformatted" != 0 ]]; then
  git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run 2>&1 | head -20
  echo "clang-format: $unformatted places differ from .clang-format" >&2
  exit 1
fi
scripts/check-spdx.sh

build() {  # build DIR [cmake args...] [-- targets...]
  local dir=$1 args=() targets=()
  shift
  while (($#)) && [[ "$1" != -- ]]; do args+=("$1"); shift; done
  (($#)) && shift && targets=(--target "$@")
  cmake -S "$root" -B "$dir" -G Ninja -DSLUICE_WERROR=ON "${args[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs" "${targets[@]}"
}

step "release build (-Werror)"
build build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo

# Sanitizers, fuzzing and arm64: builds and CPU-bound tests, with step durations of their own.
extra_steps() {
  step "ASan+UBSan build: unit tests and the power-loss simulation"
  # Only what the unit tests and the power-loss simulation run: the broker tests need no second
  # and third build, and building them would cost CI minutes.
  build build/asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=address \
    -- sluice sluice_unit_tests sluice_power_loss_tests
  (cd build/asan && LSAN_OPTIONS="suppressions=$root/tests/lsan.supp" \
    ctest -R "^(unit|cli_bad_config|chaos_power_loss)$" --output-on-failure)
  step "TSan build: unit tests"
  build build/tsan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=thread -- sluice sluice_unit_tests
  (cd build/tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest -L unit --output-on-failure)
  step "libFuzzer (clang, ASan+UBSan): config, topic patterns, verifier payloads"
  tests/fuzz/run.sh
  step "arm64 (Raspberry Pi): cross build, unit tests under qemu-aarch64, arm64 package"
  scripts/cross-arm64.sh --build-dir build/arm64
}
extra_pid=""
extra_log=build/extra-steps.log
if [[ "$quick" != 1 && "${SLUICE_TEST_SERIAL:-0}" != 1 ]]; then
  mkdir -p build
  # A process group of its own (job control), so that an early exit stops all of it.
  set -m
  (
    step_name=""
    durations=()
    # SCHED_IDLE, beyond nice 19: the tests' processes (simulators at fixed rates, brokers) get
    # the CPU whenever they want it, and these builds only what is left. Inherited by children.
    renice -n 19 -p "$BASHPID" >/dev/null
    chrt --idle -p 0 "$BASHPID"
    ionice -c 3 -p "$BASHPID" 2>/dev/null || true
    extra_steps
    end_step
    printf '\n==> step durations beside the others (m:ss)\n'
    printf '%s\n' "${durations[@]}"
  ) >"$extra_log" 2>&1 &
  extra_pid=$!
  set +m
  trap '[[ -n "$extra_pid" ]] && kill -- -"$extra_pid" 2>/dev/null || true' EXIT
  echo "sanitizers, fuzzing and arm64 run beside the next steps at idle priority: $extra_log"
fi

step "unit and integration tests"
(cd build/ci && ctest --output-on-failure --timeout 900)

step "the demo, shortened (so that the README's main command cannot rot)"
# The suite has built every target in build/ci already; the demo reuses it.
scripts/demo.sh --short --build-dir build/ci

step "benchmark smoke run, tiny sizes (so that bench/run.sh cannot rot)"
bench/run.sh --smoke --build-dir build/ci --out build/ci/bench-smoke

step "Debian package (amd64): contents, install/reinstall/remove/purge in a Debian 12 root"
deb=$(scripts/package-deb.sh --build-dir build/ci)
scripts/package-test.sh --deb "$deb"

step "the package under systemd as PID 1: a Debian 12 container driven with systemctl"
# Exit code 77: the kernel cannot make the container here (never under CI=true, where it fails).
rc=0
scripts/systemd-test.sh --deb "$deb" || rc=$?
if ((rc == 77)); then
  echo "systemd-test skipped"
elif ((rc != 0)); then
  exit "$rc"
fi

if [[ -n "$extra_pid" ]]; then
  step "waiting for the sanitizer, fuzz and arm64 steps (running beside the steps above)"
  extra_rc=0
  wait "$extra_pid" || extra_rc=$?
  extra_pid=""
  cat "$extra_log"
  if ((extra_rc != 0)); then
    echo "the sanitizer, fuzz or arm64 steps failed (exit $extra_rc); their log is above" >&2
    exit 1
  fi
elif [[ "$quick" != 1 ]]; then
  extra_steps
fi
end_step
step_name=""
total=$((SECONDS - started))
printf '\n==> step durations (m:ss)\n'
printf '%s\n' "${durations[@]}"
printf '%4d:%02d  total\n' $((total / 60)) $((total % 60))
printf '\n==> all tests passed\n'
