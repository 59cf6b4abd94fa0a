#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A Raspberry-Pi-class SD card on this machine: a file-backed loop device with ext4 on it, mounted
# at DIR, every write to it throttled to a cheap card's IOPS and bandwidth.
#
# Usage:
#   bench/throttled-disk.sh up DIR [--write-iops N] [--write-mbps M] [--size-mb S]
#   bench/throttled-disk.sh down DIR
#   bench/throttled-disk.sh status DIR
#
#   --write-iops N  write operations per second (default 500; 0: no limit)
#   --write-mbps M  write MB/s, 10^6 bytes (default 10; 0: no limit)
#   --size-mb S     size of the file system (default 512)
#
# up on a DIR that is already up only sets the limits again (so up ... --write-iops 0
# --write-mbps 0 lifts them for an unthrottled comparison on the same device); down on a DIR that
# is not up does nothing. A failed up undoes what it did. Needs root.
# Exit codes: 0 done, 1 failed, 2 usage, 77 this kernel lacks a piece (say what, change nothing).
# Environment: THROTTLED_DISK_IMAGE_DIR (default /dev/shm) holds the backing file,
#   sluice-throttled-disk.<DIR with / as _>.img; down removes it. On tmpfs (RAM) the throttle is
#   the only limit, so the figures do not depend on this machine's disk or its other users; on a
#   disk, the disk's own flush latency adds to the card's.
#
# Defaults: the SD Association's Application Performance Class 1 (A1), the class of the cards
# sold for the Raspberry Pi: at least 500 random 4 KiB write IOPS and 10 MB/s sustained sequential
# writes (https://www.sdcard.org/developers/sd-standard-overview/application-performance-class/;
# the 10 MB/s is also the Speed Class 10 / V10 floor that A1 requires). They are the class's
# minima, so a card that just qualifies; better cards write faster, worn or full ones slower.
#
# The file system is mounted as Raspberry Pi OS mounts its root: "defaults,noatime" (its
# /etc/fstab); ext4's own defaults then give data=ordered and commit=5 (journal every 5 s).
# mkfs initialises the inode tables and journal at once, so that no lazy-init thread writes in
# the background of a measurement.
#
# The throttle: blk-throttle rules for the loop device's major:minor in the ROOT cgroup of the
# cgroup v1 blkio hierarchy (blkio.throttle.write_iops_device, write_bps_device). Buffered
# writes reach a device from the kernel's flusher threads, not from the process that wrote: under
# cgroup v1 there is no writeback attribution, so a rule in a process's own cgroup would miss
# them, while the flusher threads (and every process not moved elsewhere) live in the root
# cgroup. The limit sits on the loop device itself, so it holds whatever the I/O path: write(),
# writeback, fsync, the ext4 journal (a cache flush counts as one write operation). The loop
# device writes to its backing file with direct I/O, so the host's page cache neither absorbs nor
# doubles the card's writes. What it does not model:
# a card's own latency per write and its garbage collection stalls; this is a rate limit only.
set -euo pipefail

blkio=/sys/fs/cgroup/blkio
usage() { sed -n '6,/^# Defaults:/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "throttled-disk.sh: $*" >&2; exit 1; }
skip() { echo "throttled-disk.sh: SKIP: $*" >&2; exit 77; }

(($# >= 2)) || usage
cmd=$1 dir=${2%/}
shift 2
[[ -n "$dir" ]] || usage
iops=500 mbps=10 size_mb=512
while (($#)); do
  case $1 in
  --write-iops) iops=${2:?}; shift 2 ;;
  --write-mbps) mbps=${2:?}; shift 2 ;;
  --size-mb) size_mb=${2:?}; shift 2 ;;
  *) echo "throttled-disk.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in "$iops" "$mbps" "$size_mb"; do [[ "$v" =~ ^[0-9]+$ ]] || usage; done
((size_mb >= 64)) || die "--size-mb: at least 64"

dir=$(realpath -m "$dir")
image_dir=${THROTTLED_DISK_IMAGE_DIR:-/dev/shm}
image=$image_dir/sluice-throttled-disk.${dir//\//_}.img

# The loop device backed by our image, if any.
loop_of_image() { [[ -f "$image" ]] && losetup -n -O NAME -j "$image" | head -1 || true; }
devno() { lsblk -dno MAJ:MIN "$1" | tr -d ' '; }

# set_limits MAJ:MIN IOPS BPS: 0 removes a rule.
set_limits() {
  echo "$1 $2" >"$blkio/blkio.throttle.write_iops_device"
  echo "$1 $3" >"$blkio/blkio.throttle.write_bps_device"
}

check_kernel() {
  ((EUID == 0)) || die "needs root (loop devices, mount, cgroup rules)"
  local t
  for t in losetup mkfs.ext4 mount umount lsblk findmnt fallocate; do
    command -v "$t" >/dev/null || skip "no $t"
  done
  for t in write_iops_device write_bps_device; do
    [[ -w "$blkio/blkio.throttle.$t" ]] ||
      skip "no writable $blkio/blkio.throttle.$t: no cgroup v1 blkio hierarchy, or a kernel" \
        "without CONFIG_BLK_DEV_THROTTLING (cgroup v2's root cgroup takes no io.max)"
  done
  [[ -e /dev/loop-control ]] || skip "no loop devices (/dev/loop-control)"
  [[ -d "$image_dir" ]] || die "no directory $image_dir for the backing file"
  grep -qw ext4 /proc/filesystems || skip "no ext4 in /proc/filesystems"
}

down() {
  local loop dev
  loop=$(loop_of_image)
  if [[ -n "$loop" ]]; then
    dev=$(devno "$loop")
    # Lifted first, so that the unmount's last writes do not crawl.
    [[ -n "$dev" ]] && set_limits "$dev" 0 0 2>/dev/null || true
    if findmnt -rno SOURCE --mountpoint "$dir" 2>/dev/null | grep -qx "$loop"; then
      umount "$dir" || die "cannot unmount $dir (busy? see: fuser -vm $dir)"
    fi
    losetup -d "$loop" || die "cannot detach $loop"
  fi
  rm -f "$image"
}

status() {
  local loop dev
  loop=$(loop_of_image)
  [[ -n "$loop" ]] || { echo "$dir: down"; return 0; }
  dev=$(devno "$loop")
  echo "$dir: up on $loop ($dev), mounted with" \
    "$(findmnt -no OPTIONS --mountpoint "$dir" || echo 'nothing: not mounted')"
  local f
  for f in write_iops write_bps; do
    echo "$f: $(grep "^$dev " "$blkio/blkio.throttle.${f}_device" | cut -d' ' -f2 || echo none)"
  done
}

up() {
  local loop dev
  loop=$(loop_of_image)
  if [[ -z "$loop" ]]; then
    if mountpoint -q "$dir"; then die "$dir is already a mount point of something else"; fi
    if [[ -d "$dir" && -n "$(ls -A "$dir")" ]]; then
      die "$dir is not empty (mounting would hide it)"
    fi
    trap 'echo "throttled-disk.sh: up failed; undoing" >&2; down' ERR
    mkdir -p "$dir"
    fallocate -l "${size_mb}MiB" "$image"
    loop=$(losetup --find --show --direct-io=on "$image")
    mkfs.ext4 -q -F -L sluice-sd -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$loop"
    mount -t ext4 -o defaults,noatime "$loop" "$dir"
    trap - ERR
  elif ! findmnt -rno SOURCE --mountpoint "$dir" | grep -qx "$loop"; then
    die "$image is attached to $loop but not mounted at $dir: run down first"
  fi
  dev=$(devno "$loop")
  [[ -n "$dev" ]] || { down; die "no major:minor for $loop"; }
  set_limits "$dev" "$iops" $((mbps * 1000000)) || { down; die "cannot set the throttle for $dev"; }
  local limits="${iops} IOPS, ${mbps} MB/s"
  ((iops || mbps)) || limits="no limit"
  echo "$dir: $loop ($dev), ext4 defaults,noatime; writes limited to $limits (0: no limit)"
}

case $cmd in
up) check_kernel; up ;;
down) ((EUID == 0)) || die "needs root"; down ;;
status) status ;;
*) usage ;;
esac
