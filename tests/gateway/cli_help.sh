# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# What sluice's command line offers, as its help says it (CLI11's format): sourced by the tests
# that hold the manual page and the bash completion to the program.
#
# cli_help SLUICE prints one line per thing, tab-separated: COMMAND KIND NAME, where COMMAND is the
# command path ("sluice", "sluice dead-letters list") and KIND one of
#   command     NAME is a command under COMMAND
#   option      NAME is an option of COMMAND (-c and --config are two lines)
#   positional  NAME is a positional argument of COMMAND
#   choice      NAME is an option of COMMAND with a fixed set of values: "--log-level trace,debug,..."
# It walks the help of every command it finds. Fails when a help does not parse as expected.

cli_help() {
  local sluice=$1
  local queue=("sluice") path help
  while ((${#queue[@]})); do
    path=${queue[0]}
    queue=("${queue[@]:1}")
    # shellcheck disable=SC2086  # the command path is words
    help=$("$sluice" ${path#sluice} --help) || {
      echo "cli_help: '$path --help' failed" >&2
      return 1
    }
    local section="" line name names found=0
    while IFS= read -r line; do
      if [[ "$line" =~ ^([A-Za-z]+):$ ]]; then
        section=${BASH_REMATCH[1]}
        continue
      fi
      # An entry starts with two spaces; its description may go on in deeper indented lines.
      [[ "$line" =~ ^\ \ ([^ ].*)$ ]] || continue
      names=${BASH_REMATCH[1]%% *}
      case "$section" in
        Subcommands)
          printf '%s\tcommand\t%s\n' "$path" "$names"
          queue+=("$path $names")
          ;;
        Options)
          local long=""
          for name in ${names//,/ }; do
            printf '%s\toption\t%s\n' "$path" "$name"
            [[ "$name" == --* ]] && long=$name
          done
          if [[ "$line" =~ :\{([^}]*)\} ]]; then
            printf '%s\tchoice\t%s %s\n' "$path" "$long" "${BASH_REMATCH[1]}"
          fi
          ;;
        Positionals)
          printf '%s\tpositional\t%s\n' "$path" "$names"
          ;;
        *)
          echo "cli_help: '$path --help' has an entry in an unknown section '$section': $line" >&2
          return 1
          ;;
      esac
      found=$((found + 1))
    done <<<"$help"
    if ((found == 0)); then
      echo "cli_help: found nothing in '$path --help':" >&2
      printf '%s\n' "$help" >&2
      return 1
    fi
  done
}
