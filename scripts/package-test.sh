#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds sluice's .deb from a build directory and installs it the way an operator would, with apt,
# into a throwaway Debian 12 root (a minimal debootstrap, cached in ~/.cache/sluice; see
# scripts/lib/debian_root.sh): apt resolves the declared Depends from the Debian archive, and the
# maintainer scripts run for real (chroot). Then, inside that root:
#   - sluice --version and sluice check-config of the installed /etc/sluice/sluice.toml, as root and
#     as the sluice user (who must be able to read the configuration),
#   - the system user, the state directory and the configuration's owner and mode,
#   - a reinstall (postinst a second time) keeps an edited configuration,
#   - remove keeps the configuration and the event log; purge deletes both, and the stat override.
# The .deb is first checked on its own by scripts/check-deb.sh (fields, contents, stripped, runs).
# Usage: scripts/package-test.sh [--build-dir DIR | --deb FILE]
#   (default: build the .deb from build/ci, which must be built already; --deb tests FILE instead)
# Needs root (chroot) and the Debian mirror (SLUICE_DEBIAN_MIRROR, default deb.debian.org).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR source=lib/debian_root.sh
source scripts/lib/debian_root.sh
debian_root_package_args "$0" "$@"
if ((EUID != 0)); then
  exec sudo -n "$0" --build-dir "$build_dir" ${deb:+--deb "$deb"}
fi

step() { printf '\n==> package-test: %s\n' "$*"; }

scripts/install-deps.sh >/dev/null

if [[ -z "$deb" ]]; then
  step "building the .deb"
  deb=$(scripts/package-deb.sh --build-dir "$build_dir")
fi
scripts/check-deb.sh --lintian "$deb"
version=$(dpkg-deb --field "$deb" Version)

# --- the throwaway roots: copies of the cached pristine root -------------------------------------
cache=$(debian_root_base)
work=$(mktemp -d /tmp/sluice-package-test.XXXXXX)
cleanup() {
  local r
  for r in "$work"/*/; do debian_root_release "$r"; done
  rm -rf "$work"
}
trap cleanup EXIT
new_root() {  # new_root DIR: a fresh copy of the cached root, with the .deb in its /tmp
  root=$1
  step "copying the root to $root"
  debian_root_copy "$cache" "$root"
  cp "$deb" "$root/tmp/"
}
in_root() { debian_root_run "$root" "$@"; }
new_root "$work/adduser"

failures=0
fail() {
  echo "package-test: FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { echo "package-test: ok: $*"; }
expect_eq() {  # expect_eq WHAT GOT WANT
  if [[ "$2" == "$3" ]]; then ok "$1: $2"; else fail "$1 is '$2', expected '$3'"; fi
}

step "apt-get install ./$(basename "$deb") in the root"
debian_root_install "$root" "$work/install.log" "/tmp/$(basename "$deb")"
grep -E '^(Need to get|Setting up sluice)' "$work/install.log" || true

step "checks in the installed root"
expect_eq "dpkg status" "$(in_root dpkg-query -W -f='${db:Status-Abbrev}${Version}' sluice)" \
  "ii $version"
expect_eq "sluice --version" "$(in_root sluice --version)" "sluice $version"
if out=$(in_root sluice check-config --config /etc/sluice/sluice.toml 2>&1); then
  ok "check-config as root: $out"
else
  fail "check-config of the installed configuration as root: $out"
fi
if out=$(in_root runuser -u sluice -- sluice check-config --config /etc/sluice/sluice.toml 2>&1); then
  ok "check-config as user sluice: $out"
else
  fail "check-config as user sluice: $out"
fi
IFS=: read -r _ _ uid gid _ home shell <<<"$(in_root getent passwd sluice)"
if [[ -n "$uid" ]] && ((uid < 1000)); then ok "system user sluice, uid $uid"; else fail "user sluice: uid '$uid'"; fi
expect_eq "group of user sluice" "$(in_root getent group "$gid" | cut -d: -f1)" sluice
expect_eq "home of sluice" "$home" /var/lib/sluice
expect_eq "shell of sluice" "$shell" /usr/sbin/nologin
expect_eq "/var/lib/sluice" "$(in_root stat -c '%U:%G %a' /var/lib/sluice)" "sluice:sluice 750"
expect_eq "/etc/sluice/sluice.toml" "$(in_root stat -c '%U:%G %a' /etc/sluice/sluice.toml)" \
  "root:sluice 640"
expect_eq "conffiles" "$(in_root dpkg-query -W -f='${Conffiles}' sluice | awk 'NF { print $1 }')" \
  /etc/sluice/sluice.toml
expect_eq "unit file" "$(in_root stat -c '%a' /lib/systemd/system/sluice.service)" 644
if [[ -e "$root/etc/systemd/system/multi-user.target.wants/sluice.service" ]]; then
  fail "the service was enabled on install"
else
  ok "the service is not enabled"
fi
# Exactly the three programs: no test, fuzz or benchmark binary.
expect_eq "installed programs" "$(in_root dpkg -L sluice | grep -E '/s?bin/.' | sort | tr '\n' ' ')" \
  "/usr/bin/sluice /usr/bin/sluice-sim /usr/bin/sluice-verify "

step "reinstall keeps an edited configuration"
echo '# edited by the operator' >>"$root/etc/sluice/sluice.toml"
in_root dpkg -i "/tmp/$(basename "$deb")" >"$work/reinstall.log" 2>&1 || {
  cat "$work/reinstall.log" >&2
  fail "reinstall (postinst run a second time) failed"
}
expect_eq "edited line after reinstall" "$(tail -1 "$root/etc/sluice/sluice.toml")" \
  "# edited by the operator"
expect_eq "mode after reinstall" "$(in_root stat -c '%U:%G %a' /etc/sluice/sluice.toml)" \
  "root:sluice 640"

step "remove keeps the configuration and the event log"
# Stands for the event log with undelivered events; written by the daemon's user.
in_root runuser -u sluice -- sh -c 'echo events > /var/lib/sluice/events.db'
in_root dpkg --remove sluice >"$work/remove.log" 2>&1 || {
  cat "$work/remove.log" >&2
  fail "dpkg --remove failed"
}
[[ ! -e "$root/usr/bin/sluice" ]] && ok "/usr/bin/sluice removed" || fail "/usr/bin/sluice still there"
[[ -f "$root/var/lib/sluice/events.db" ]] && ok "event log kept on remove" ||
  fail "remove deleted the event log"
[[ -f "$root/etc/sluice/sluice.toml" ]] && ok "configuration kept on remove" ||
  fail "remove deleted the configuration"

step "purge deletes the configuration and the event log"
in_root dpkg --purge sluice >"$work/purge.log" 2>&1 || {
  cat "$work/purge.log" >&2
  fail "dpkg --purge failed"
}
[[ ! -e "$root/var/lib/sluice" ]] && ok "/var/lib/sluice deleted on purge" ||
  fail "/var/lib/sluice survived the purge"
[[ ! -e "$root/etc/sluice" ]] && ok "/etc/sluice deleted on purge" ||
  fail "/etc/sluice survived the purge: $(ls -A "$root/etc/sluice")"
if in_root dpkg-statoverride --list /etc/sluice/sluice.toml >/dev/null; then
  fail "the stat override survived the purge"
else
  ok "stat override removed"
fi
in_root getent passwd sluice >/dev/null && ok "system user sluice kept (Debian practice)" ||
  fail "user sluice was deleted"

# Where systemd is installed (every Raspberry Pi OS and Debian 12 system) postinst creates the user
# from the package's sysusers.d entry instead; systemd-standalone-sysusers is that tool alone.
step "install where systemd-sysusers exists"
new_root "$work/sysusers"
debian_root_install "$root" "$work/install-sysusers.log" systemd-standalone-sysusers \
  "/tmp/$(basename "$deb")" || fail "apt-get install with systemd-sysusers failed"
IFS=: read -r _ _ uid _ gecos home shell <<<"$(in_root getent passwd sluice)"
expect_eq "user sluice from sysusers.d" "$gecos:$home:$shell" \
  "sluice edge event gateway:/var/lib/sluice:/usr/sbin/nologin"
# systemd-sysusers hands out system uids downwards from 999, adduser upwards from 100: this tells
# which of the two made the user.
if [[ -n "$uid" ]] && ((uid >= 900 && uid < 1000)); then
  ok "uid $uid: made by systemd-sysusers"
else
  fail "uid '$uid': user sluice not made by systemd-sysusers"
fi
expect_eq "/var/lib/sluice" "$(in_root stat -c '%U:%G %a' /var/lib/sluice)" "sluice:sluice 750"
if out=$(in_root runuser -u sluice -- sluice check-config --config /etc/sluice/sluice.toml 2>&1); then
  ok "check-config as user sluice: $out"
else
  fail "check-config as user sluice: $out"
fi

if ((failures)); then
  echo "package-test: $failures check(s) failed" >&2
  exit 1
fi
echo "package-test: $(basename "$deb") installs (adduser and sysusers paths), runs, reinstalls, removes and purges"
