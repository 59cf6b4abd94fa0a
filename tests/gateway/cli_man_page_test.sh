#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The manual pages (cmake/ManPages.cmake) against what they document; label "unit":
#   - sluice.1 and sluice.toml.5 render without a warning from man, as lintian runs it;
#   - sluice(1) has a subsection for every command `sluice ... --help` names, with an entry for each
#     option, short and long, and positional argument of that command and each value of an option
#     with a fixed set; and it documents no command or option the program lacks;
#   - sluice.toml(5) has an entry for every key of the key tables in docs/configuration.md and
#     every heading of it: the page is that document converted, and this checks the conversion
#     (tests/gateway/config_documented_test.cpp holds the document to the parser).
# Usage: cli_man_page_test.sh SLUICE MAN_DIR CONFIGURATION_MD
set -euo pipefail
sluice=$1
man_dir=$2
config_md=$3
# shellcheck source=tests/gateway/cli_help.sh
source "$(dirname "$0")/cli_help.sh"

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

for page in sluice.1 sluice.toml.5; do
  [[ -f "$man_dir/$page" ]] || {
    echo "cli_man_page: $man_dir/$page is missing: configure the build again" >&2
    exit 1
  }
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$man_dir/$page" 2>&1 >/dev/null) ||
    fail "man -l $page exited $?"
  [[ -z "$warnings" ]] || fail "man --warnings -l $page: $warnings"
done

# The pages as plain text, wide enough that no line is broken: sections start in column 0,
# subsections in column 3, entries in column 7.
sluice_1=$(LC_ALL=C MANWIDTH=1000 man -l "$man_dir/sluice.1" 2>/dev/null)
toml_5=$(LC_ALL=C MANWIDTH=1000 man -l "$man_dir/sluice.toml.5" 2>/dev/null)

# The part of sluice(1) about one command: the OPTIONS section for sluice itself, the subsection
# named after the command for the others.
part() {
  if [[ "$1" == sluice ]]; then
    awk '$0 == "OPTIONS" { on = 1; next } on && /^[^ ]/ { exit } on' <<<"$sluice_1"
  else
    awk -v h="   $1" '$0 == h { on = 1; next }
      on && /^([^ ]|[ ][^ ]|[ ][ ][^ ]|[ ][ ][ ][^ ])/ { exit } on' <<<"$sluice_1"
  fi
}

help=$(cli_help "$sluice")
declare -A options=() commands=([sluice]=1)
while IFS=$'\t' read -r path kind name; do
  case "$kind" in
    command)
      commands["$path $name"]=1
      [[ -n "$(part "$path $name")" ]] || fail "sluice(1) has no subsection '$path $name'"
      ;;
    option)
      options["$path $name"]=1
      where=$path
      # -h, --help: every command has them; sluice(1) says so once, under OPTIONS.
      [[ "$name" == -h || "$name" == --help ]] && where=sluice
      grep -qE -- "^ {7}([^ ].*[ ,])?$name([ ,=]|$)" <<<"$(part "$where")" ||
        fail "sluice(1), '$where': no entry for $name (an option of '$path')"
      ;;
    positional)
      grep -qE -- "^ {7}${name^^}(\.\.\.)?( |$)" <<<"$(part "$path")" ||
        fail "sluice(1), '$path': no entry for the argument ${name^^}"
      ;;
    choice)
      values=${name#* }
      for value in ${values//,/ }; do
        grep -qw -- "$value" <<<"$(part "$path")" ||
          fail "sluice(1), '$path': does not name '$value', a value of ${name%% *}"
      done
      ;;
  esac
done <<<"$help"
echo "cli_man_page: sluice --help names ${#commands[@]} commands and ${#options[@]} options"

# No subsection, and no option entry, for something the program lacks.
while IFS= read -r heading; do
  [[ -n "${commands[${heading#   }]:-}" ]] || fail "sluice(1) documents '${heading#   }', which sluice lacks"
done < <(awk '$0 == "COMMANDS" { on = 1; next } on && /^[^ ]/ { exit } on && /^   [^ ]/' <<<"$sluice_1")
for path in "${!commands[@]}"; do
  while IFS= read -r entry; do
    for option in $(grep -oE -- '(^|[ ,])--?[A-Za-z][-A-Za-z]*' <<<"$entry"); do
      option=${option#,}
      [[ -n "${options["$path $option"]:-}" ]] ||
        fail "sluice(1), '$path': documents $option, which '$path --help' lacks"
    done
  done < <(part "$path" | grep -E '^ {7}-')
done

# sluice.toml(5): every key and heading of docs/configuration.md.
keys=0
while IFS= read -r key; do
  keys=$((keys + 1))
  grep -qE "^ {7}$key \(" <<<"$toml_5" || fail "sluice.toml(5) has no entry for the key $key"
done < <(awk '/^\| Key \|/ { t = 1; next } t && /^\|/ { print } !/^\|/ { t = 0 }' "$config_md" |
  sed -n 's/^| *`\([a-z_]*\)` *|.*/\1/p')
while IFS= read -r heading; do
  heading=$(sed 's/^#* //; s/[`"]//g' <<<"$heading")
  grep -qxE "( {3})?$(sed 's/[][\.*^$(){}+?|]/\\&/g' <<<"$heading")" <<<"$toml_5" ||
    fail "sluice.toml(5) has no heading '$heading'"
done < <(awk '/^```/ { code = !code; next } !code && /^###* /' "$config_md")
((keys > 50)) || fail "found only $keys keys in the key tables of $config_md"
echo "cli_man_page: sluice.toml(5) has the $keys keys of $(basename "$config_md")"

if ((failures)); then
  echo "cli_man_page: $failures check(s) failed" >&2
  exit 1
fi
echo "cli_man_page: all checks passed"
