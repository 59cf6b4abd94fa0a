#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `sluice dead-letters list|show|replay|purge` end to end: output, exit codes (0 ok, 1 error,
# 2 bad usage), and replay/purge refused while another process holds the log's lock.
# Usage: cli_dead_letters_test.sh SLUICE_BINARY
set -uo pipefail
sluice=${1:?usage: $0 SLUICE_BINARY}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
db=$dir/events.db
failures=0

# A format-1 log (docs/log-format.md) written with the sqlite3 CLI: event 3 waits, events 1 and 2
# are dead letters. Opening it read-write also proves the migration.
sqlite3 "$db" "PRAGMA journal_mode=WAL; BEGIN;
CREATE TABLE events(seq INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, qos INTEGER NOT NULL,
  topic TEXT NOT NULL, payload BLOB NOT NULL);
CREATE TABLE cursors(name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE dead_letters(seq INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL,
  qos INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, error TEXT NOT NULL,
  failed_ms INTEGER NOT NULL);
PRAGMA application_id=1397506885; PRAGMA user_version=1;
INSERT INTO events VALUES(3, 1700000000002, 1, 'devices/c/data', 'three');
INSERT INTO cursors VALUES('kafka', 2);
INSERT INTO dead_letters VALUES(1, 1700000000000, 1, 'devices/a/data', 'hello', 'events: too large', 1700000001000);
INSERT INTO dead_letters VALUES(2, 1700000000001, 1, 'devices/b/data', x'00ff10', 'no route', 1700000001001);
COMMIT;" >/dev/null

# expect NAME WANTED_EXIT WANTED_TEXT ARGS...   (stdout and stderr together)
expect() {
  local name=$1 want_rc=$2 want=$3 out rc
  shift 3
  out=$("$sluice" dead-letters "$@" 2>&1)
  rc=$?
  if [[ $rc != "$want_rc" || "$out" != *"$want"* ]]; then
    echo "FAIL $name: exit $rc (wanted $want_rc), wanted '$want' in: $out"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

expect list 0 $'1\t2023-11-14T22:13:20.000Z\t2023-11-14T22:13:21.000Z\t5\tkafka\tdevices/a/data\tevents: too large' list --log "$db"
expect list-limit 0 "1 of 2 dead letters shown (--after 1 for the next ones)" list --limit 1 --log "$db"
expect show-text 0 $'payload   5 bytes, text:\nhello' show 1 --log "$db"
expect show-hex 0 "00000000: 00ff 10" show 2 --log "$db"
expect show-missing 1 "no dead letter with seq 9" show 9 --log "$db"
expect show-no-seq 2 "seq is required" show --log "$db"
expect replay-nothing 2 "name dead letters by seq, or --all" replay --log "$db"
expect replay-both 2 "excludes" replay 1 --all --log "$db"
expect bad-subcommand 2 "" frobnicate --log "$db"
expect no-log 1 "no event log at $dir/absent.db" purge --all --log "$dir/absent.db"
expect bad-config 2 "" list --config "$dir/absent.toml"
[[ $(sqlite3 "$db" "PRAGMA user_version") == 1 ]] || {
  echo "FAIL: a read-only command changed the file"
  failures=$((failures + 1))
}

# Another process holds the lock, as the daemon does (with its pid in the file).
exec {lockfd}>"$db.lock"
flock -n "$lockfd" || {
  echo "FAIL: cannot take the lock for the test"
  exit 1
}
echo $$ >"$db.lock"
expect replay-locked 1 "sluice is running on this log" replay 1 --log "$db"
expect purge-locked 1 "pid $$" purge --all --log "$db"
expect list-locked 0 "2 of 2 dead letters shown" list --log "$db"
exec {lockfd}>&-

expect replay 0 "dead letter 2 -> event 4" replay 2 --log "$db"
expect replay-missing 1 "no dead letter with seq 2" replay 2 --log "$db"
expect after-replay 0 "1 of 1 dead letters shown" list --log "$db"
[[ $(sqlite3 "$db" "SELECT hex(payload) FROM events WHERE seq = 4") == 00FF10 ]] || {
  echo "FAIL: the replayed event is not event 4 with its payload"
  failures=$((failures + 1))
}
expect purge 0 "purged 1 dead letters" purge --all --log "$db"
expect empty 0 "0 of 0 dead letters shown" list --log "$db"

if ((failures)); then
  echo "$failures failed"
  exit 1
fi
echo "every dead-letters command behaved"
