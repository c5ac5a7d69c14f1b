#!/usr/bin/env bash
# image/assemble.sh ROOTFS DATA DATA_MIB IMAGE: writes the partitioned SD-card image without
# loop mounts: the firmware partition (vfat, from ROOTFS/boot/firmware, with mcopy), the
# root (ext4 from ROOTFS, mke2fs -d) and the data partition (ext4 from DATA), placed with
# sfdisk and dd. MBR, because the Raspberry Pi 3's boot ROM reads nothing else.
set -euo pipefail
rootfs=$1
data=$2
data_mib=$3
image=$4
parts=$(dirname "$image")/parts
rm -rf "$parts"
mkdir -p "$parts/firmware"

firmware_mib=128
# The firmware files leave the root: /boot/firmware is only a mount point there.
cp -a "$rootfs/boot/firmware/." "$parts/firmware/"
find "$rootfs/boot/firmware" -mindepth 1 -delete
[ -e "$parts/firmware/config.txt" ] && [ -e "$parts/firmware/cmdline.txt" ] || {
    echo "assemble.sh: raspi-firmware left no config.txt/cmdline.txt in /boot/firmware" >&2
    exit 1
}
mkfs.vfat -F 32 -n KM-BOOT -C "$parts/firmware.vfat" $((firmware_mib * 1024)) >/dev/null
mcopy -s -p -i "$parts/firmware.vfat" "$parts/firmware"/* ::

# The root: what the files need plus a quarter, and room for ext4's own tables.
root_mib=$(( $(du -sm "$rootfs" | cut -f1) * 5 / 4 + 64 ))
mke2fs -q -t ext4 -L KM-ROOT -m 0 -d "$rootfs" "$parts/root.ext4" "${root_mib}M"
mke2fs -q -t ext4 -L KM-DATA -m 0 -d "$data" "$parts/data.ext4" "${data_mib}M"

# Partitions on 4 MiB boundaries (SD cards' erase blocks).
mib=2048 # sectors of 512 bytes
first=$((4 * mib))
root_start=$((first + firmware_mib * mib))
data_start=$((root_start + root_mib * mib))
total_mib=$((4 + firmware_mib + root_mib + data_mib))
rm -f "$image"
truncate -s "${total_mib}M" "$image"
sfdisk --quiet "$image" <<EOF
label: dos
unit: sectors
start=$first, size=$((firmware_mib * mib)), type=c, bootable
start=$root_start, size=$((root_mib * mib)), type=83
start=$data_start, size=$((data_mib * mib)), type=83
EOF
dd if="$parts/firmware.vfat" of="$image" bs=1M seek=4 conv=notrunc,sparse status=none
dd if="$parts/root.ext4" of="$image" bs=1M seek=$((4 + firmware_mib)) conv=notrunc,sparse status=none
dd if="$parts/data.ext4" of="$image" bs=1M seek=$((4 + firmware_mib + root_mib)) conv=notrunc,sparse status=none
rm -rf "$parts"
sfdisk --list "$image"
