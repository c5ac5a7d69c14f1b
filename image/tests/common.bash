# image/tests/common.bash: sourced by the image's tests. Reads files out of the built image
# without mounting it: the firmware partition (1, vfat) with mtools, the root partition
# (2, ext4) with debugfs.
#
#   image_init IMAGE        checks the image and the tools, sets $image, $scratch (removed
#                           at exit), $kernel_version
#   firmware_file NAME DEST copies /boot/firmware/NAME (the firmware partition's NAME)
#   root_file PATH DEST     copies PATH from the root file system
#   firmware_has NAME       whether the firmware partition has a file NAME

partition_offset() { # the byte offset of partition N of $image
    local start
    start=$(sfdisk --dump "$image" | sed -n "s|^.*$1 : start= *\([0-9]*\),.*|\1|p")
    [ -n "$start" ] || { echo "$0: $image has no partition $1" >&2; exit 1; }
    echo $((start * 512))
}

image_init() {
    image=$1
    [ -f "$image" ] || { echo "$0: no image at $image; run image/build.sh first" >&2; exit 1; }
    local tool
    for tool in sfdisk mcopy mdir debugfs dtc zstd cpio; do
        command -v "$tool" >/dev/null || {
            echo "$0: $tool is missing (image/build.sh installs it: device-tree-compiler, mtools, e2fsprogs, zstd, cpio)" >&2
            exit 1
        }
    done
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    firmware_offset=$(partition_offset 1)
    root_offset=$(partition_offset 2)
    mdir -b -i "$image@@$firmware_offset" :: | sed 's|^::/||' >"$scratch/firmware.list"
    kernel_version=$(sed -n 's/^initrd\.img-//p' "$scratch/firmware.list" | sort -V | tail -n1)
    [ -n "$kernel_version" ] || { echo "$0: no initrd.img-* in the firmware partition" >&2; exit 1; }
}

firmware_has() { grep -qx -- "$1" "$scratch/firmware.list"; }

firmware_file() {
    mcopy -n -i "$image@@$firmware_offset" "::$1" "$2" 2>/dev/null || {
        echo "$0: the firmware partition has no $1" >&2
        exit 1
    }
}

root_file() {
    rm -f "$2"
    debugfs -R "dump -p $1 $2" "$image?offset=$root_offset" 2>/dev/null
    [ -s "$2" ] || { echo "$0: the root file system has no $1" >&2; exit 1; }
}
