#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks that every file of the project (tracked, or new and not ignored) says its licence in one
# of its first three lines: "SPDX-License-Identifier: Apache-2.0" in the comment syntax of its
# format, after a shebang or another first line the format needs (a shellcheck directive, the
# title of an scdoc page). Exempt: documents, data and test inputs, images, the licence itself,
# the Debian copyright file (a format without comments), and the CI entry point .ci/.
# Prints the files that lack it and exits 1; scripts/test.sh runs it beside the clang-format check.
# Usage: scripts/check-spdx.sh
set -euo pipefail
cd "$(dirname "$0")/.."

exempt='(^|/)LICENSE$|\.(md|json|png)$|^tests/fuzz/corpus/|^systemd/deb/copyright$|^\.ci/'
files=()
while IFS= read -r -d '' f; do
  [[ -f "$f" && -s "$f" && ! "$f" =~ $exempt ]] && files+=("$f")
done < <(git ls-files -z --cached --others --exclude-standard)
# One awk for every file, reading three lines of each.
mapfile -t missing < <(awk '
  FNR == 1 { if (NR > 1 && !ok) print name; ok = 0; name = FILENAME }
  FNR <= 3 && /SPDX-License-Identifier: Apache-2\.0$/ { ok = 1 }
  FNR >= 3 { nextfile }
  END { if (NR > 0 && !ok) print name }' "${files[@]}")
checked=${#files[@]}

if ((${#missing[@]})); then
  printf '%s\n' "${missing[@]}" >&2
  echo "check-spdx: ${#missing[@]} of $checked files lack 'SPDX-License-Identifier: Apache-2.0' in their first three lines (above)" >&2
  exit 1
fi
echo "check-spdx: all $checked files name their licence"
