# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Throwaway Debian 12 roots for the package tests (scripts/package-test.sh, scripts/systemd-test.sh):
# a minimal debootstrap cached in ~/.cache/sluice, roots derived from it with more packages (cached
# too), and copies of either that a test installs into and then deletes.
#
# Sourced after `set -euo pipefail`, as root. Defines:
#   debian_root_base
#       prints the cached pristine root (debootstrap --variant=minbase bookworm), made on first use
#   debian_root_derived NAME PACKAGE...
#       prints a cached root: the pristine one with PACKAGEs installed by apt, made on first use and
#       made again when the package list or the pristine root changes
#   debian_root_copy SOURCE DEST
#       copies a cached root to DEST (a directory that does not exist, or an empty one such as a
#       fresh tmpfs) and mounts /proc in it
#   debian_root_run ROOT COMMAND...
#       runs COMMAND in ROOT (chroot) with a clean environment
#   debian_root_install ROOT LOG PACKAGE...
#       apt-get update and install --no-install-recommends of PACKAGEs (names or .deb paths inside
#       ROOT); apt's output goes to LOG, printed on failure
#   debian_root_release ROOT
#       unmounts what debian_root_copy mounted; for a trap, so it never fails
# Environment: SLUICE_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# SLUICE_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security), XDG_CACHE_HOME.

debian_root_mirror=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian_root_cache=${XDG_CACHE_HOME:-$HOME/.cache}/sluice

# The package tests' arguments, [--build-dir DIR | --deb FILE], into build_dir (default build/ci)
# and deb (an absolute path; empty: build the .deb from build_dir). $1 is the script, for usage.
debian_root_package_args() {
  local script=$1
  shift
  build_dir=build/ci
  deb=""
  while (($#)); do
    case "$1" in
      --build-dir)
        build_dir=$2
        shift
        ;;
      --deb)
        deb=$(realpath "$2")
        shift
        ;;
      *)
        echo "usage: $script [--build-dir DIR | --deb FILE]" >&2
        exit 2
        ;;
    esac
    shift
  done
}

debian_root_base() {
  local cache=$debian_root_cache/rootfs-bookworm-amd64
  if [[ ! -f "$cache/.complete" ]]; then
    echo "debian_root: creating the cached Debian 12 root $cache (once)" >&2
    rm -rf "$cache.new"
    mkdir -p "$debian_root_cache"
    # --variant=minbase is Debian's essential set plus apt: no adduser, no systemd, so a package's
    # own Depends must bring what its scripts need.
    debootstrap --variant=minbase bookworm "$cache.new" "$debian_root_mirror" \
      >"$cache.new.log" 2>&1 || {
      tail -20 "$cache.new.log" >&2
      echo "debian_root: debootstrap failed (log: $cache.new.log)" >&2
      return 1
    }
    # The same suites as a Debian 12 system: security fixes and updates, not only the release.
    cat >"$cache.new/etc/apt/sources.list" <<EOF
deb $debian_root_mirror bookworm main
deb $debian_root_mirror bookworm-updates main
deb ${SLUICE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
EOF
    touch "$cache.new/.complete"
    rm -rf "$cache" && mv "$cache.new" "$cache"
  fi
  printf '%s\n' "$cache"
}

debian_root_derived() {
  local name=$1 base cache want
  shift
  base=$(debian_root_base)
  cache=$debian_root_cache/rootfs-bookworm-amd64-$name
  # The marker holds the package list: a changed list makes the root again, and so does a newer
  # pristine root.
  want=$(printf '%s\n' "$@")
  if [[ -f "$cache/.complete" && "$(<"$cache/.complete")" == "$want" &&
    "$cache/.complete" -nt "$base/.complete" ]]; then
    printf '%s\n' "$cache"
    return 0
  fi
  echo "debian_root: creating the cached root $cache with $* (once)" >&2
  if [[ -d "$cache.new" ]]; then debian_root_release "$cache.new"; fi
  rm -rf "$cache.new"
  debian_root_copy "$base" "$cache.new"
  if ! debian_root_install "$cache.new" "$cache.new.log" "$@"; then
    debian_root_release "$cache.new"
    return 1
  fi
  debian_root_run "$cache.new" apt-get clean
  debian_root_release "$cache.new"
  printf '%s\n' "$want" >"$cache.new/.complete"
  rm -rf "$cache" && mv "$cache.new" "$cache"
  printf '%s\n' "$cache"
}

debian_root_copy() {
  local source=$1 dest=$2
  mkdir -p "$dest"
  cp -a "$source/." "$dest/"
  rm -f "$dest/.complete"
  cp /etc/resolv.conf "$dest/etc/resolv.conf"
  mount -t proc proc "$dest/proc"
}

debian_root_run() {
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"
}

debian_root_install() {
  local root=$1 log=$2
  shift 2
  # DEBIAN_FRONTEND only keeps debconf from asking questions.
  if ! { debian_root_run "$root" apt-get -qq update &&
    debian_root_run "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
      --no-install-recommends "$@"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "debian_root: apt-get install $* in $root failed" >&2
    return 1
  fi
}

debian_root_release() {
  local root=$1
  if mountpoint -q "$root/proc"; then umount "$root/proc" || umount -l "$root/proc" || true; fi
}
