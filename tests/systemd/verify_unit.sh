#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks systemd/sluice.service and systemd/sluice.sysusers with systemd's own tools:
#   1. `systemd-analyze verify` accepts the unit without a single warning (verify exits 0 on an
#      unknown key or an unparsable value and only prints a warning, so any output fails),
#   2. the same check flags a deliberately broken copy (the check can fail),
#   3. `systemd-analyze security --offline` rates the sandbox at exposure 2.0 or better,
#   4. `systemd-sysusers --dry-run` accepts the sysusers.d file.
# verify needs the ExecStart binary to exist, so it checks a copy that runs the built sluice.
# Usage: verify_unit.sh UNIT SYSUSERS SLUICE_BIN WORK_DIR
set -euo pipefail
unit=$1 sysusers=$2 bin=$3 work=$4

for tool in systemd-analyze systemd-sysusers; do
  command -v "$tool" >/dev/null || { echo "verify_unit: $tool not found (Debian package systemd)" >&2; exit 1; }
done
rm -rf "$work"
mkdir -p "$work"

grep -q '^ExecStart=/usr/bin/sluice run --config /etc/sluice/sluice.toml$' "$unit" ||
  { echo "verify_unit: $unit: ExecStart is not the installed sluice" >&2; exit 1; }
# The metrics endpoint sizes its connection cap from this limit (docs/operations.md).
grep -qE '^LimitNOFILE=[0-9]+$' "$unit" ||
  { echo "verify_unit: $unit: LimitNOFILE is not set to a number" >&2; exit 1; }
sed "s#^ExecStart=/usr/bin/sluice #ExecStart=$bin #" "$unit" > "$work/sluice.service"

verify() {  # verify FILE: prints systemd-analyze's complaints; fails if there are any
  local out rc=0
  out=$(cd "$(dirname "$1")" && systemd-analyze verify "./$(basename "$1")" 2>&1) || rc=$?
  if [[ $rc != 0 || -n "$out" ]]; then
    printf '%s\n' "$out"
    return 1
  fi
}

echo "verify_unit: systemd-analyze verify $unit (ExecStart=$bin)"
verify "$work/sluice.service"

mkdir -p "$work/broken"
sed 's#^WatchdogSec=#WatchdogSecs=#' "$work/sluice.service" > "$work/broken/sluice.service"
if verify "$work/broken/sluice.service" >/dev/null; then
  echo "verify_unit: a unit with an unknown key passed the check; the check is broken" >&2
  exit 1
fi

echo "verify_unit: systemd-analyze security --offline (threshold 2.0)"
if ! systemd-analyze security --offline=true --threshold=20 "$work/sluice.service" > "$work/security.txt" 2>&1; then
  grep -E 'Overall exposure|✗' "$work/security.txt" >&2 || cat "$work/security.txt" >&2
  echo "verify_unit: exposure above 2.0" >&2
  exit 1
fi
grep 'Overall exposure' "$work/security.txt"

echo "verify_unit: systemd-sysusers --dry-run $sysusers"
systemd-sysusers --dry-run "$(realpath "$sysusers")" > "$work/sysusers.txt" 2>&1 ||
  { cat "$work/sysusers.txt" >&2; exit 1; }
if grep -qiE 'ignoring|failed|invalid' "$work/sysusers.txt"; then
  cat "$work/sysusers.txt" >&2
  exit 1
fi
echo "verify_unit: OK"
