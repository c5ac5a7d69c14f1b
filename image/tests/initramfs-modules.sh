#!/usr/bin/env bash
# image/tests/initramfs-modules.sh [IMAGE]: does the built image's initramfs carry every
# module each supported board needs to reach its SD card or eMMC, and fsck?
#
# For each board's device tree in the firmware partition (bcm2837-rpi-3-b, -3-b-plus,
# bcm2711-rpi-4-b, -400, -cm4-io) the walk in sd-path.awk lists the nodes between the board's
# SD/eMMC host and what it depends on (its supplies, their GPIO controllers, clocks, DMA,
# parents...). Each node's modalias is matched against the image kernel's modules.alias as
# modprobe would; a node that no module matches is served by the kernel itself (its
# compatible is in the kernel image: "built in") or by nothing. Every module found, and the
# modules it depends on (modules.dep), must be in the initramfs (listed here: cpio, zstd).
# Besides: ext4 and, for image/smoke.sh's qemu virt machine, virtio_blk; and fsck.ext4 for
# the root file system. Prints what it found per board; exits 1 on anything missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.bash
. "$here/common.bash"
image_init "${1:-$here/../out/keymother-arm64.img}"

boards="bcm2837-rpi-3-b bcm2837-rpi-3-b-plus bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4-io"
modules_dir=/usr/lib/modules/$kernel_version
root_file "$modules_dir/modules.alias" "$scratch/modules.alias"
root_file "$modules_dir/modules.dep" "$scratch/modules.dep"
root_file "$modules_dir/modules.builtin" "$scratch/modules.builtin"
firmware_file "vmlinuz-$kernel_version" "$scratch/vmlinuz"
firmware_file "initrd.img-$kernel_version" "$scratch/initrd.img"

# The initramfs, as initramfs-tools makes it: cpio archives one after the other. Modules
# that are compressed already (.ko.xz) come first in an uncompressed archive, the rest in a
# zstd-compressed one (COMPRESS=zstd). Each archive is listed; like unmkinitramfs, the
# padding of zeros between them is skipped.
initramfs_size=$(stat -c %s "$scratch/initrd.img")
offset=0
: >"$scratch/initramfs.list"
while [ "$offset" -lt "$initramfs_size" ]; do
    magic=$(od -An -tx1 -j "$offset" -N6 "$scratch/initrd.img" | tr -d ' \n')
    case "$magic" in
    303730373031 | 303730373032) # "070701", "070702": an uncompressed cpio archive
        # (cpio stops reading at the archive's end: what feeds it must not fail for that)
        cpio -it < <(tail -c +$((offset + 1)) "$scratch/initrd.img") 2>"$scratch/cpio.err" \
            >>"$scratch/initramfs.list"
        blocks=$(sed -n 's/^\([0-9]*\) blocks\{0,1\}$/\1/p' "$scratch/cpio.err")
        [ -n "$blocks" ] || { echo "$0: cannot read the initramfs' archive at byte $offset" >&2; exit 1; }
        offset=$((offset + blocks * 512))
        # the zeros up to the next archive
        zeros=$(od -An -tx1 -v -j "$offset" -N 65536 "$scratch/initrd.img" | tr -s ' \n' '\n' |
            sed '/^$/d' | awk '$0 != "00" && !found { print NR - 1; found = 1 } END { if (!found) print NR }')
        offset=$((offset + zeros))
        ;;
    28b52ffd*) # zstd: the last archive
        cpio -it --quiet < <(tail -c +$((offset + 1)) "$scratch/initrd.img" | zstd -q -dc) \
            >>"$scratch/initramfs.list"
        break
        ;;
    *)
        echo "$0: initrd.img-$kernel_version: neither cpio nor zstd at byte $offset ($magic)" >&2
        exit 1
        ;;
    esac
done
# Module names as the kernel spells them: the file name without .ko[.xz|.zst], - as _.
module_name() { local name=${1##*/}; name=${name%%.ko*}; echo "${name//-/_}"; }
declare -A in_initramfs=()
while read -r path; do
    case "$path" in *.ko | *.ko.*) in_initramfs[$(module_name "$path")]=1 ;; esac
done <"$scratch/initramfs.list"
echo "initramfs: $kernel_version, ${#in_initramfs[@]} modules: $(printf '%s\n' "${!in_initramfs[@]}" | sort | xargs)"
[ "${#in_initramfs[@]}" -gt 0 ] || { echo "$0: no modules found in the initramfs" >&2; exit 1; }

missing=()
# Checks that module NAME and what it depends on are in the initramfs; records what is not.
require_module() {
    local name=$1 why=$2 dep_line dep
    [ -n "${in_initramfs[$name]:-}" ] || missing+=("$name ($why)")
    dep_line=$(awk -v name="$name" '{ module = $1; sub(/:$/, "", module); sub(/.*\//, "", module);
        sub(/\.ko.*/, "", module); gsub(/-/, "_", module); if (module == name) { print; exit } }' \
        "$scratch/modules.dep")
    for dep in ${dep_line#*:}; do
        dep=$(module_name "$dep")
        [ -n "${in_initramfs[$dep]:-}" ] || missing+=("$dep (needed by $name, $why)")
    done
}

# The modules whose alias matches MODALIAS (a glob match, as modprobe does), one a line;
# COMPATIBLES (space-separated) narrow modules.alias down first.
modules_for() {
    local modalias=$1 compatibles=$2 word glob module
    while read -r word glob module; do
        [ "$word" = alias ] || continue
        # shellcheck disable=SC2053 # a glob, as modprobe matches it
        if [[ $modalias == $glob ]]; then echo "$module"; fi
    done < <(tr ' ' '\n' <<<"$compatibles" | grep -F -f - "$scratch/modules.alias" | grep '^alias of:') |
        sort -u
}

for board in $boards; do
    firmware_has "$board.dtb" || { missing+=("$board.dtb (not in the firmware partition)"); continue; }
    firmware_file "$board.dtb" "$scratch/$board.dtb"
    dtc -q -I dtb -O dts "$scratch/$board.dtb" >"$scratch/$board.dts"
    model=$(sed -n 's/^\tmodel = "\(.*\)";$/\1/p' "$scratch/$board.dts" | head -n1)
    echo
    echo "$board ($model):"
    hosts=0
    needed=()
    while IFS=$'\t' read -r path why modalias compatibles; do
        case "$why" in
        disabled | sdio*) printf '  %-40s %s\n' "$path" "$why"; continue ;;
        "SD card or eMMC host") hosts=$((hosts + 1)) ;;
        esac
        if [ -z "$compatibles" ]; then
            printf '  %-40s %s\n  %-40s   no compatible: no driver of its own\n' "$path" "$why" ""
            continue
        fi
        modules=$(modules_for "$modalias" "$compatibles" | xargs)
        if [ -n "$modules" ]; then
            verdict=module
            for module in $modules; do
                if grep -q "/${module//_/[-_]}\.ko" "$scratch/modules.builtin"; then
                    verdict+=" $module (built in)"
                else
                    verdict+=" $module"
                    needed+=("$module")
                    require_module "$module" "$board: $path"
                fi
            done
        else
            # No module claims it: its driver, if any, is part of the kernel image.
            verdict="no module; no driver found for it"
            for compatible in $compatibles; do
                if grep -a -q -F "$compatible" "$scratch/vmlinuz"; then
                    verdict="no module; built in ($compatible is in the kernel image)"
                    break
                fi
            done
        fi
        printf '  %-40s %s\n  %-40s   %s -> %s\n' "$path" "$why" "" "$compatibles" "$verdict"
    done < <(awk -f "$here/sd-path.awk" "$scratch/$board.dts")
    [ "$hosts" -gt 0 ] || missing+=("$board: no enabled SD card or eMMC host in its device tree")
    echo "  => modules needed in the initramfs: ${needed[*]:-none}"
done

echo
# The root file system's own module, and qemu virt's disk (image/smoke.sh).
for module in ext4 virtio_blk; do
    if grep -q "/$module\.ko" "$scratch/modules.builtin"; then
        echo "$module: built in"
    else
        require_module "$module" "root file system / qemu virt"
        echo "$module: module, $([ -n "${in_initramfs[$module]:-}" ] && echo in the initramfs || echo MISSING)"
    fi
done
# fsck for the root file system (initramfs-tools' fsck hook: e2fsprogs installed, passno 1).
for program in fsck fsck.ext4 e2fsck; do
    if grep -Eq "^(usr/)?s?bin/$program\$" "$scratch/initramfs.list"; then
        echo "$program: in the initramfs ($(grep -E "^(usr/)?s?bin/$program\$" "$scratch/initramfs.list" | head -n1))"
    else
        missing+=("$program (the root file system's check at boot)")
    fi
done

echo
if [ ${#missing[@]} -gt 0 ]; then
    printf 'MISSING from the initramfs: %s\n' "${missing[@]}"
    echo "(image/rootfs/etc/initramfs-tools/modules lists what goes in; rebuild with image/build.sh)"
    exit 1
fi
echo "initramfs-modules: every board's SD/eMMC path, ext4, virtio_blk and fsck are in the initramfs"
