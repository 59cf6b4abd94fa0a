#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets of tests/fuzz with clang, ASan and UBSan and runs each one for a
# bounded time, starting from the seed corpus in tests/fuzz/corpus/<target>. Fails on any crash,
# leak, sanitizer report, broken invariant, timeout or memory blow-up, and prints the input that
# caused it with the command that replays it.
#
# Usage: tests/fuzz/run.sh [TARGET...]        (default: every target; e.g. config topic_pattern)
# Environment:
#   SLUICE_FUZZ_SECONDS    fuzzing time per target (default 40)
#   SLUICE_FUZZ_BUILD_DIR  build directory (default build/fuzz; must be configured with clang)
#   SLUICE_FUZZ_SEED       libFuzzer seed, to repeat a run (default: a fresh one, printed)
# Inputs that reach new code are kept in BUILD_DIR/corpus/<target>, so later runs start from there;
# copy the interesting ones into tests/fuzz/corpus/<target> to keep them.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${SLUICE_FUZZ_SECONDS:-40}
dir=${SLUICE_FUZZ_BUILD_DIR:-build/fuzz}
all=(config topic_pattern verifier)
targets=("$@")
((${#targets[@]} > 0)) || targets=("${all[@]}")

binaries=()
for t in "${targets[@]}"; do
  [[ -d tests/fuzz/corpus/$t ]] || { echo "fuzz: unknown target '$t' (known: ${all[*]})" >&2; exit 2; }
  binaries+=("${t}_fuzzer")
done

CC=clang CXX=clang++ cmake -S "$root" -B "$dir" -G Ninja -DSLUICE_WERROR=ON -DSLUICE_FUZZ=ON \
  -DSLUICE_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j "$(nproc)" --target "${binaries[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
for t in "${targets[@]}"; do
  work=$dir/corpus/$t
  artifacts=$dir/artifacts/$t
  log=$dir/logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  rm -f "$artifacts"/*
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/"
        -print_final_stats=1)
  [[ -n "${SLUICE_FUZZ_SEED:-}" ]] && args+=(-seed="$SLUICE_FUZZ_SEED")
  case $t in
    config)
      # The shipped example is the best seed there is, and must be taken as it is today.
      cp gateway/sluice.example.toml "$work/sluice.example.toml"
      args+=(-max_len=8192 -dict=tests/fuzz/toml.dict)
      ;;
    *) args+=(-max_len=4096) ;;
  esac
  printf 'fuzz: %s for %ss ... ' "$t" "$seconds"
  start=$SECONDS
  if "$dir/tests/fuzz/${t}_fuzzer" "${args[@]}" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "ok: ${runs:-?} inputs, ${cov:-cov: ?}, $((SECONDS - start))s"
  else
    failed=1
    echo "FAILED"
    grep -E 'ERROR|runtime error|_fuzzer:|SUMMARY|Seed:' "$log" | head -20 >&2 || true
    for input in "$artifacts"/*; do
      [[ -e "$input" ]] || continue
      echo "fuzz: input that fails $t: $input" >&2
      echo "fuzz: replay with: $dir/tests/fuzz/${t}_fuzzer $input" >&2
    done
    echo "fuzz: full log: $log" >&2
  fi
done
exit "$failed"
