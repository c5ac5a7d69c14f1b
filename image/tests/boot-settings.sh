#!/usr/bin/env bash
# image/tests/boot-settings.sh [IMAGE]: the built image's boot settings, as the boards read
# them.
#
# - cmdline.txt (what the Pi's firmware passes to the kernel): one line, root=LABEL=KM-ROOT,
#   exactly one `ro` and no `rw`, fsck.repair=yes, and no cma=;
# - CMA without cma=: each board's device tree reserves the default pool
#   (/reserved-memory/linux,cma with linux,cma-default), on the Pi 4 family within the first
#   GiB (alloc-ranges), and the kernel's own default (CONFIG_CMA_SIZE_MBYTES) is printed;
# - config.txt boots the kernel and initramfs that are in the firmware partition;
# - /etc/fstab: the root and the data partition are checked at boot (passno 1 and 2);
# - the kernel and initramfs hooks that keep cmdline.txt so on later updates are installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.bash
. "$here/common.bash"
image_init "${1:-$here/../out/keymother-arm64.img}"

problems=()
firmware_file cmdline.txt "$scratch/cmdline.txt"
firmware_file config.txt "$scratch/config.txt"
root_file /etc/fstab "$scratch/fstab"
root_file "/boot/config-$kernel_version" "$scratch/kernel-config"

cmdline=$(cat "$scratch/cmdline.txt")
echo "cmdline.txt: $cmdline"
[ "$(grep -c . "$scratch/cmdline.txt")" -eq 1 ] || problems+=("cmdline.txt is not one line")
count() { tr -s ' \t' '\n' <"$scratch/cmdline.txt" | grep -c -x -- "$1" || true; }
[ "$(count ro)" -eq 1 ] || problems+=("cmdline.txt has $(count ro) 'ro', not one")
[ "$(count rw)" -eq 0 ] || problems+=("cmdline.txt has 'rw'")
[ "$(count root=LABEL=KM-ROOT)" -eq 1 ] || problems+=("cmdline.txt has no root=LABEL=KM-ROOT")
[ "$(count fsck.repair=yes)" -eq 1 ] || problems+=("cmdline.txt has no fsck.repair=yes")
if tr -s ' \t' '\n' <"$scratch/cmdline.txt" | grep -q '^cma='; then
    problems+=("cmdline.txt sets cma=, which overrides the Pi 4 family's device-tree CMA pool")
fi

echo "kernel's default CMA: $(sed -n 's/^CONFIG_CMA_SIZE_MBYTES=//p' "$scratch/kernel-config") MiB (CONFIG_CMA_SIZE_MBYTES, used where no device tree node sets one)"
for board in bcm2837-rpi-3-b bcm2837-rpi-3-b-plus bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4-io; do
    firmware_has "$board.dtb" || { problems+=("no $board.dtb in the firmware partition"); continue; }
    firmware_file "$board.dtb" "$scratch/$board.dtb"
    node=$(fdtget "$scratch/$board.dtb" /aliases cma 2>/dev/null || echo /reserved-memory/linux,cma)
    if ! fdtget "$scratch/$board.dtb" "$node" linux,cma-default >/dev/null 2>&1; then
        problems+=("$board: no default CMA pool in its device tree ($node)")
        continue
    fi
    size=$(fdtget -t x "$scratch/$board.dtb" "$node" size)
    ranges=$(fdtget -t x "$scratch/$board.dtb" "$node" alloc-ranges 2>/dev/null || true)
    printf '%s: CMA pool %s, %d MiB%s\n' "$board" "$node" $((0x$size / 1048576)) \
        "${ranges:+, alloc-ranges <$ranges>}"
    case "$board" in
    bcm2711-*)
        # <address-high address-low size> with #address-cells 2, #size-cells 1 below 1 GiB
        read -r high low length <<<"$ranges" || true
        if [ -z "${length:-}" ] || [ $((0x$high)) -ne 0 ] || [ $((0x$low + 0x$length)) -gt $((1 << 30)) ]; then
            problems+=("$board: its CMA pool is not confined to the first GiB (alloc-ranges <$ranges>)")
        fi
        ;;
    esac
done

kernel=$(sed -n 's/^kernel=//p' "$scratch/config.txt")
initramfs=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$scratch/config.txt")
echo "config.txt: kernel=$kernel, initramfs $initramfs"
firmware_has "$kernel" || problems+=("config.txt boots $kernel, which is not in the firmware partition")
firmware_has "$initramfs" || problems+=("config.txt loads $initramfs, which is not in the firmware partition")

passno() { awk -v target="$1" '$1 !~ /^#/ && $2 == target { print $6 }' "$scratch/fstab"; }
echo "fstab: / passno $(passno /), /data passno $(passno /data)"
[ "$(passno /)" = 1 ] || problems+=("the root is not checked at boot (fstab passno $(passno /), not 1)")
[ "$(passno /data)" = 2 ] || problems+=("/data is not checked at boot (fstab passno $(passno /data), not 2)")

for hook in /etc/kernel/postinst.d/z60-keymother-cmdline /etc/kernel/postrm.d/z60-keymother-cmdline \
    /etc/initramfs/post-update.d/z60-keymother-cmdline /usr/local/lib/keymother/firmware-cmdline; do
    mode=$(debugfs -R "stat $hook" "$image?offset=$root_offset" 2>/dev/null | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p')
    case "$mode" in
    *[1357][0-7][0-7] | *[0-7][1357][0-7] | *[0-7][0-7][1357]) ;;
    *) problems+=("$hook is missing or not executable on the root (mode '$mode')") ;;
    esac
done

if [ ${#problems[@]} -gt 0 ]; then
    printf 'PROBLEM: %s\n' "${problems[@]}"
    exit 1
fi
echo "boot-settings: cmdline.txt, CMA, config.txt, fstab and the cmdline hooks are as intended"
