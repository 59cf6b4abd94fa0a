#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bash completion (gateway/sluice.bash-completion) against `sluice ... --help`; label "unit".
# It sources the file in this bash and calls its function as bash would for a TAB at the end of a
# command line:
#   - a few prefixes: `sluice che` -> check-config, `sluice dead-letters --config F l` -> list;
#   - under every command, exactly the commands its help names;
#   - after `-`, every option of the command's help, and nothing its help lacks (the commands of a
#     command also take its options, as CLI11's fallthrough lets those of dead-letters);
#   - after an option with a fixed set of values, those values; after --config and --log, files.
# Usage: cli_completion_test.sh SLUICE COMPLETION_FILE
set -euo pipefail
sluice=$1
completion=$2
# shellcheck source=tests/gateway/cli_help.sh
source "$(dirname "$0")/cli_help.sh"
# shellcheck source=gateway/sluice.bash-completion
source "$completion"

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

[[ "$(complete -p sluice)" == "complete -F _sluice sluice" ]] ||
  fail "the file does not register _sluice for sluice: $(complete -p sluice 2>&1)"

# What a TAB at the end of the words offers, sorted, one per line. bash splits `--config=F` at the
# `=`, so the words are given as bash would split them.
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  # A condition, so that errexit does not apply inside it (compopt fails outside a real TAB).
  if ! _sluice sluice "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"; then
    fail "_sluice failed on '$*'"
  fi
  ((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}" | sort
  return 0
}
# The same for a line of words separated by single spaces; a trailing space starts a new word.
complete_line() {
  local -a words
  read -ra words <<<"$1"
  [[ "$1" == *" " ]] && words+=("")
  complete_words "${words[@]}"
}
expect() {  # expect LINE EXPECTED...: the completions of LINE are exactly EXPECTED
  local line=$1
  shift
  local got want
  got=$(complete_line "$line")
  want=$(if (($#)); then printf '%s\n' "$@" | sort; fi)
  [[ "$got" == "$want" ]] || fail "'$line<TAB>' offers [${got//$'\n'/ }], expected [${want//$'\n'/ }]"
}

expect "sluice che" check-config
expect "sluice dead-letters --config /etc/sluice/sluice.toml l" list
expect "sluice dead-letters list --li" --limit
expect "sluice replay --upstream " # a value to type: nothing

help=$(cli_help "$sluice")
declare -A commands=() options=()
while IFS=$'\t' read -r path kind name; do
  case "$kind" in
    command) commands[$path]+="$name " commands["$path $name"]+="" ;;
    option) options[$path]+="$name " ;;
    choice)
      # The values, and the command path, are words.
      # shellcheck disable=SC2086
      expect "$path ${name%% *} " ${name#* }
      # shellcheck disable=SC2086
      got=$(complete_words $path "${name%% *}" =)
      # shellcheck disable=SC2086
      [[ "$got" == "$(printf '%s\n' ${name#* } | sort)" ]] ||
        fail "'$path ${name%% *}=<TAB>' offers [${got//$'\n'/ }], expected [${name#* }]"
      ;;
  esac
done <<<"${help//,/ }"
((${#commands[@]} > 1)) || fail "sluice --help names no commands"

for path in "${!commands[@]}"; do
  # shellcheck disable=SC2086  # lists of words
  expect "$path " ${commands[$path]}
  offered=$(complete_line "$path -")
  for option in ${options[$path]}; do
    grep -qx -- "$option" <<<"$offered" || fail "'$path -<TAB>' does not offer $option"
  done
  parent=${path% *}
  for option in $offered; do
    [[ " ${options[$path]} " == *" $option "* ]] ||
      [[ "$parent" == *" "* && " ${options[$parent]} " == *" $option "* ]] ||
      fail "'$path -<TAB>' offers $option, which '$path --help' lacks"
  done
done

# File names after --config and --log, also written --config=FILE.
dir=$(mktemp -d /tmp/sluice-completion.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/conf.d"
touch "$dir/sluice.toml" "$dir/staging.toml" "$dir/events.db"
cd "$dir"
expect "sluice run --config " conf.d events.db sluice.toml staging.toml
expect "sluice check-config -c s" sluice.toml staging.toml
expect "sluice status --log e" events.db
expect "sluice dead-letters --log e" events.db
got=$(complete_words sluice run --config = st)
[[ "$got" == staging.toml ]] || fail "'sluice run --config=st<TAB>' offers [$got], expected [staging.toml]"

if ((failures)); then
  echo "cli_completion: $failures check(s) failed" >&2
  exit 1
fi
echo "cli_completion: all checks passed (${#commands[@]} commands)"
