#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks a sluice .deb without installing it: the control fields, the maintainer scripts and the
# conffile, the contents list (every file the install layout promises, with owner and mode; no test,
# fuzz or benchmark binary; stripped executables), that the packaged programs run: sluice
# --version and check-config of the packaged configuration, sluice-sim and sluice-verify --help,
# that the manual pages render without warnings and the bash completion loads, and that the
# copyright file is machine-readable (DEP-5) and complete.
# For a foreign architecture, --run-with names the emulator (qemu-aarch64 for arm64).
# Usage: scripts/check-deb.sh [--run-with EMULATOR] [--lintian] FILE.deb
set -euo pipefail
cd "$(dirname "$0")/.."
run_with=()
lintian=0
while (($#)); do
  case "$1" in
    --run-with)
      run_with=("$2")
      shift
      ;;
    --lintian) lintian=1 ;;
    -*)
      echo "usage: $0 [--run-with EMULATOR] [--lintian] FILE.deb" >&2
      exit 2
      ;;
    *) deb=$1 ;;
  esac
  shift
done
[[ -n "${deb:-}" && -f "$deb" ]] || {
  echo "check-deb: no .deb given or not found: '${deb:-}'" >&2
  exit 2
}

failures=0
fail() {
  echo "check-deb: FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { echo "check-deb: ok: $*"; }

version=$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
field() { dpkg-deb --field "$deb" "$1"; }

# --- control fields --------------------------------------------------------------------------
[[ "$(field Package)" == sluice ]] || fail "Package is '$(field Package)', expected sluice"
[[ "$(field Version)" == "$version" ]] || fail "Version is '$(field Version)', expected $version"
arch=$(field Architecture)
[[ "$(basename "$deb")" == "sluice_${version}_${arch}.deb" ]] ||
  fail "file name $(basename "$deb") does not match sluice_${version}_${arch}.deb"
for f in Section Priority Maintainer Description Installed-Size; do
  [[ -n "$(field "$f")" ]] || fail "control field $f is missing"
done
depends=$(field Depends)
# Every shared library sluice links must be a dependency (dpkg-shlibdeps), and so must a way to
# create the system user and the unit's ExecReload, /bin/kill (procps).
for dep in libc6 libstdc++6 libpaho-mqttpp3-1 libpaho-mqtt1.3 'librdkafka++1' libsqlite3-0 \
  libspdlog1.10 libfmt9 libsystemd0 libcurl4 librabbitmq4 adduser procps; do
  [[ ",$depends" == *", $dep"* || ",$depends" == *",$dep"* ]] ||
    fail "Depends lacks $dep: $depends"
done
ok "control: sluice $version $arch, Depends: $depends"

# --- maintainer scripts and conffiles ----------------------------------------------------------
ctrl=$(mktemp -d /tmp/sluice-check-deb.XXXXXX)
trap 'rm -rf "$ctrl"' EXIT
dpkg-deb --control "$deb" "$ctrl/DEBIAN"
for s in postinst prerm postrm; do
  if [[ ! -x "$ctrl/DEBIAN/$s" ]]; then
    fail "maintainer script $s missing or not executable"
  elif ! sh -n "$ctrl/DEBIAN/$s"; then
    fail "maintainer script $s is not valid sh"
  fi
done
grep -qx /etc/sluice/sluice.toml "$ctrl/DEBIAN/conffiles" ||
  fail "/etc/sluice/sluice.toml is not a conffile: $(cat "$ctrl/DEBIAN/conffiles" 2>/dev/null)"
# The unit is never enabled or started on install: the operator configures it first.
if grep -vE '^ *#' "$ctrl/DEBIAN/postinst" |
  grep -E 'deb-systemd-invoke +(start|restart)|systemctl +(--system +)?(enable|start|restart)'; then
  fail "postinst enables or starts the service"
fi
ok "maintainer scripts postinst/prerm/postrm, conffile /etc/sluice/sluice.toml"

# --- contents ----------------------------------------------------------------------------------
listing=$(dpkg-deb --contents "$deb")
expect() {  # expect MODE PATH
  local line
  line=$(awk -v p="./$2" '$6 == p' <<<"$listing")
  if [[ -z "$line" ]]; then
    fail "package lacks /$2"
  elif [[ "$(awk '{ print $1 " " $2 }' <<<"$line")" != "$1 root/root" ]]; then
    fail "/$2 is '$(awk '{ print $1 " " $2 }' <<<"$line")', expected '$1 root/root'"
  fi
}
expect -rwxr-xr-x usr/bin/sluice
expect -rwxr-xr-x usr/bin/sluice-sim
expect -rwxr-xr-x usr/bin/sluice-verify
expect -rw-r--r-- etc/sluice/sluice.toml
# Debian 12 keeps units in /lib/systemd/system, later releases in /usr/lib/systemd/system
# (systemd/CMakeLists.txt asks the build machine's systemd).
if grep -q ' \./usr/lib/systemd/system/sluice\.service$' <<<"$listing"; then
  expect -rw-r--r-- usr/lib/systemd/system/sluice.service
else
  expect -rw-r--r-- lib/systemd/system/sluice.service
fi
expect -rw-r--r-- usr/lib/sysusers.d/sluice.conf
expect -rw-r--r-- usr/share/doc/sluice/README.md
expect -rw-r--r-- usr/share/doc/sluice/configuration.md
expect -rw-r--r-- usr/share/doc/sluice/install.md
expect -rw-r--r-- usr/share/doc/sluice/copyright
expect -rw-r--r-- usr/share/doc/sluice/changelog.gz
expect -rw-r--r-- usr/share/sluice/monitoring/sluice-dashboard.json
expect -rw-r--r-- usr/share/sluice/monitoring/sluice-alerts.yml
expect -rw-r--r-- usr/share/man/man1/sluice.1.gz
expect -rw-r--r-- usr/share/man/man5/sluice.toml.5.gz
expect -rw-r--r-- usr/share/bash-completion/completions/sluice
if grep -Ei '(test|fuzz|bench)[^/]*$' <<<"$(awk '{ print $6 }' <<<"$listing")" | grep -v '\.md$'; then
  fail "package contains test, fuzz or benchmark files (above)"
fi
if awk '$2 != "root/root"' <<<"$listing" | grep .; then
  fail "files not owned by root/root (above)"
fi
if awk '{ print $6 }' <<<"$listing" | grep -vE '^\./($|etc/|lib/|usr/)'; then
  fail "files outside /etc, /lib and /usr (above)"
fi
ok "contents: $(grep -c '^-' <<<"$listing") files, layout and permissions as expected"

# --- the packaged programs --------------------------------------------------------------------
tree=$ctrl/tree
dpkg-deb --extract "$deb" "$tree"
for exe in sluice sluice-sim sluice-verify; do
  if LC_ALL=C readelf -S "$tree/usr/bin/$exe" | grep -qE '\.(symtab|debug_info)'; then
    fail "/usr/bin/$exe is not stripped"
  fi
done
got=$("${run_with[@]}" "$tree/usr/bin/sluice" --version) || fail "sluice --version exited $?"
[[ "$got" == "sluice $version" ]] || fail "sluice --version printed '$got'"
if out=$("${run_with[@]}" "$tree/usr/bin/sluice" check-config --config "$tree/etc/sluice/sluice.toml" 2>&1); then
  ok "packaged sluice: '$got'; $out"
else
  fail "the packaged configuration does not pass check-config: $out"
fi
for exe in sluice-sim sluice-verify; do
  "${run_with[@]}" "$tree/usr/bin/$exe" --help >/dev/null || fail "$exe --help exited $?"
done
ok "sluice-sim and sluice-verify start${run_with:+ under ${run_with[*]}}"
echo "check-deb: $(basename "$deb"): $(stat -c %s "$deb") bytes; /usr/bin/sluice $(stat -c %s "$tree/usr/bin/sluice") bytes (stripped)"

# --- manual pages, bash completion, copyright ----------------------------------------------------
before=$failures
for page in man1/sluice.1.gz man5/sluice.toml.5.gz; do
  if ! gzip -t "$tree/usr/share/man/$page" 2>/dev/null; then
    fail "/usr/share/man/$page is not gzip-compressed"
  elif ! warnings=$(MANWIDTH=80 man --warnings -l "$tree/usr/share/man/$page" 2>&1 >/dev/null); then
    fail "man -l /usr/share/man/$page failed: $warnings"
  elif [[ -n "$warnings" ]]; then
    fail "man --warnings -l /usr/share/man/$page: $warnings"
  fi
done
completion=$tree/usr/share/bash-completion/completions/sluice
if [[ "$(bash -c 'source "$1" && complete -p sluice' _ "$completion" 2>&1)" != "complete -F _sluice sluice" ]]; then
  fail "sourcing /usr/share/bash-completion/completions/sluice does not set up the completion of sluice"
fi
((failures > before)) ||
  ok "manual pages sluice(1) and sluice.toml(5) render without warnings; bash completion loads"
# Machine-readable (DEP-5): the format line, sluice's own files under Apache-2.0, and a stand-alone
# License paragraph for every licence name a License field uses. Prints what is wrong.
dep5=$(awk '
  NR == 1 && $0 != "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" {
    print "the first line is not the DEP-5 Format field"
  }
  /^$/ { first = ""; files = ""; next }
  /^[A-Za-z-]+:/ {
    field = substr($0, 1, index($0, ":") - 1)
    value = substr($0, index($0, ":") + 1)
    gsub(/^[ \t]+|[ \t]+$/, "", value)
    if (first == "") first = field
    if (field == "Files") files = value
    if (field == "License") {
      if (first == "License") defined[value] = 1
      if (files == "*") own = value
      n = split(value, names, /[ ()]+/)
      for (i = 1; i <= n; i++) if (names[i] != "" && names[i] != "and" && names[i] != "or") used[names[i]] = 1
    }
  }
  END {
    if (own != "Apache-2.0") print "Files: * is under \"" own "\", not Apache-2.0"
    for (name in used) if (!(name in defined)) print "no stand-alone License paragraph for " name
  }' "$tree/usr/share/doc/sluice/copyright")
if [[ -n "$dep5" ]]; then
  fail "/usr/share/doc/sluice/copyright: $dep5"
else
  ok "copyright: DEP-5, sluice under Apache-2.0, every licence named has its text"
fi

if ((lintian)); then
  # Errors and warnings fail the check. Accepted: no-manual-page, for sluice-sim and sluice-verify
  # (their --help and docs/firmware-sim.md are their manual; sluice's own pages are checked above).
  if lintian --fail-on error,warning --suppress-tags no-manual-page "$deb"; then
    ok "lintian: no errors or warnings"
  else
    fail "lintian complains (above)"
  fi
fi

if ((failures)); then
  echo "check-deb: $(basename "$deb"): $failures check(s) failed" >&2
  exit 1
fi
echo "check-deb: $(basename "$deb"): all checks passed"
