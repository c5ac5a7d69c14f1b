#!/bin/sh
# Runs INSIDE the emulated appliance during image/smoke.sh, at every boot, before anything
# else the test does there: the state the boot left, reported on the console (lines starting
# KMSMOKE check:) and judged here, ending with "KMSMOKE checks passed" or a KMSMOKE FAIL line.
#
# With CARD_MIB, the emulated card's size, from smoke.sh's plan (see guest.sh).
# - the boot finished with no failed unit (systemctl --failed empty; the state "running");
# - the root is mounted read-only and refuses a write;
# - the root file system was checked by the initramfs (/run/initramfs/fsck.log) and the data
#   partition by systemd-fsck@ before it was mounted (its journal);
# - the data partition and its file system reach (nearly: 16 MiB) the end of the card,
#   and what keymother-grow-data did about it this boot.
set -eu
card_mib=${CARD_MIB:?CARD_MIB comes from the plan smoke.sh writes}
say() { echo "KMSMOKE check: $*"; }
fail() { echo "KMSMOKE FAIL $*"; exit 1; }
trap 'status=$?; [ $status -eq 0 ] || echo "KMSMOKE FAIL check.sh ended with status $status"' EXIT

# The boot is over when no job is left; this unit is Type=exec, so it is not one of them.
state=$(systemctl is-system-running --wait || true)
failed=$(systemctl --failed --no-legend --plain | awk '{ print $1 }' | xargs)
say "system $state; failed units: ${failed:-none}"
[ -z "$failed" ] || {
    for unit in $failed; do journalctl -b -u "$unit" -o cat --no-pager | tail -n 5 | sed "s/^/KMSMOKE check: $unit: /"; done
    fail "failed units after boot: $failed"
}
[ "$state" = running ] || fail "the system is $state after boot"

options=$(findmnt -no OPTIONS /)
say "root: $(findmnt -no SOURCE /) $options"
case "$options" in ro,* | ro) ;; *) fail "the root is mounted $options" ;; esac
touch /usr/.kmsmoke 2>/dev/null && fail "the root file system accepted a write"

# The initramfs checks the root before mounting it (initramfs-tools logs its fsck there);
# e2fsck names a file system by its label.
root_fsck=$(grep '^KM-ROOT: ' /run/initramfs/fsck.log 2>/dev/null | tail -n 1 || true)
[ -n "$root_fsck" ] || fail "the initramfs did not check the root file system (no KM-ROOT in /run/initramfs/fsck.log)"
say "root fsck (initramfs): $root_fsck"
data_fsck=$(journalctl -b -o cat --no-pager -u 'systemd-fsck@*' | grep '^KM-DATA: ' | tail -n 1 || true)
[ -n "$data_fsck" ] || fail "no check of the data partition in this boot's journal (systemd-fsck@)"
say "data fsck (systemd-fsck@): $data_fsck"

data=$(findmnt -no SOURCE /data)
say "data: $data $(findmnt -no OPTIONS /data)"
# grow-data's own lines (sfdisk's tables and resize2fs's lines stay in the journal)
journalctl -b -o cat --no-pager -u keymother-grow-data.service |
    grep -E '^(growing|partition|the file system|/data )' | sed 's/^/KMSMOKE check: grow: /'
name=$(basename "$(readlink -f "$data")")
disk=$(basename "$(readlink -f "/sys/class/block/$name/..")")
disk_mib=$(($(cat "/sys/class/block/$disk/size") / 2048))
start_mib=$(($(cat "/sys/class/block/$name/start") / 2048))
part_mib=$(($(cat "/sys/class/block/$name/size") / 2048))
blocks=$(dumpe2fs -h "$data" 2>/dev/null | sed -n 's/^Block count: *//p')
block_size=$(dumpe2fs -h "$data" 2>/dev/null | sed -n 's/^Block size: *//p')
fs_mib=$((blocks * block_size / 1048576))
say "card $disk: $disk_mib MiB; data partition: $part_mib MiB from $start_mib MiB; its file system: $fs_mib MiB (df: $(df -h --output=size,avail /data | tail -n 1 | awk '{ print $1 ", " $2 " available" }'))"
[ "$disk_mib" -eq "$card_mib" ] || fail "the card is $disk_mib MiB, not the $card_mib MiB smoke.sh made"
[ $((start_mib + part_mib)) -ge $((disk_mib - 16)) ] ||
    fail "the data partition ends at $((start_mib + part_mib)) MiB, not at the card's end ($disk_mib MiB)"
[ "$fs_mib" -ge $((part_mib - 16)) ] ||
    fail "/data's file system ($fs_mib MiB) does not fill its partition ($part_mib MiB)"
echo "KMSMOKE checks passed"
