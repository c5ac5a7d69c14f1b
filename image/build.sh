#!/usr/bin/env bash
# image/build.sh: builds the keymother SD-card image for the Raspberry Pi (arm64) on a Debian
# x86_64 machine, from Debian's archive and this workspace, in one command:
#
#   sudo image/build.sh [--out DIR] [--suite SUITE] [--mirror URL] [--data-mib N]
#                       [--root-password-hash HASH]
#
# 1. host packages (mmdebstrap, qemu-user-static for the arm64 maintainer scripts, the
#    cross linker, mtools, ...) and the binfmt handler for arm64;
# 2. keymotherd, keymother and keymother-terminal cross-compiled for aarch64 and packaged as
#    the Debian package `keymother` (cargo-deb);
# 3. the root file system: mmdebstrap from image/packages.txt, image/rootfs/ laid over it,
#    the keymother package installed with dpkg like any other;
# 4. the data partition's starting contents (an empty vault, the site's settings drop-ins);
# 5. the image: firmware (vfat), root (ext4, mounted read-only) and data (ext4) partitions
#    written without loop mounts (mkfs.vfat + mcopy, mke2fs -d, sfdisk, dd);
# 6. zstd-compressed with its SHA-256 beside it, and `systemd-analyze security` of
#    keymotherd on the built root.
#
# Output in DIR (default image/out): keymother-arm64.img (raw, what image/smoke.sh boots),
# keymother-arm64.img.zst and .sha256 (what is flashed), keymother_*.deb, security.txt,
# build-times.txt. Needs root (mmdebstrap's root mode, file ownership in the partitions).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/.." && pwd)
out="$here/out"
suite=trixie
mirror=http://deb.debian.org/debian
data_mib=512
root_password_hash=
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --data-mib) data_mib=$2; shift 2 ;;
    --root-password-hash) root_password_hash=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$data_mib" in
'' | *[!0-9]*) echo "build.sh: --data-mib takes a number of MiB, not '$data_mib'" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: needs root (mmdebstrap's root mode, owners in the partitions); try sudo" >&2
    exit 1
fi

mkdir -p "$out"
work="$out/work"
rm -rf "$work"
mkdir -p "$work"
timings="$out/build-times.txt"
: >"$timings"
build_start=$(date +%s)
stage_start=$build_start
stage() {
    local now
    now=$(date +%s)
    if [ -n "${stage_name:-}" ]; then
        printf '%-40s %4d s\n' "$stage_name" $((now - stage_start)) | tee -a "$timings"
    fi
    stage_name=$1
    stage_start=$now
    [ "$1" = done ] || echo "=== $1"
}

# ---------------------------------------------------------------------------------------
stage "host packages"
# apt's download sandbox user cannot always write to /tmp on build machines; it runs as
# root here, where the downloads are checked against Debian's keyring all the same.
apt_options=(-o APT::Sandbox::User=root -o Dpkg::Use-Pty=0 -q)
export DEBIAN_FRONTEND=noninteractive
host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
# device-tree-compiler and cpio: image/tests/ read the built image's device trees and initramfs.
host_packages=(mmdebstrap mtools dosfstools fdisk e2fsprogs zstd
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu arch-test
    device-tree-compiler cpio)
missing=()
for package in "${host_packages[@]}" qemu-user-static qemu-system-arm; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    backports=()
    if [ "$host_suite" = bookworm ]; then
        # bookworm's qemu conflicts with the qemu-utils from backports that build machines
        # carry, and backports' qemu knows newer machines; take both qemu packages from there.
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d; then
            cat >/etc/apt/sources.list.d/keymother-bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        fi
        backports=(-t bookworm-backports)
    fi
    apt-get "${apt_options[@]}" update
    apt-get "${apt_options[@]}" install -y --no-install-recommends "${host_packages[@]}"
    apt-get "${apt_options[@]}" install -y --no-install-recommends "${backports[@]}" \
        qemu-user-static qemu-system-arm
fi

stage "binfmt for arm64"
# Containers and CI machines often lack systemd-binfmt at boot: register by hand.
mountpoint -q /proc/sys/fs/binfmt_misc ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
    /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf
arch-test arm64 >/dev/null || {
    echo "build.sh: arm64 binaries do not run here even with qemu-user-static registered" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------
stage "cross-compile and package keymother"
rust_target=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$rust_target" || rustup target add "$rust_target"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version '^3' -q
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
(
    cd "$workspace"
    cargo build --release --locked --target "$rust_target" \
        -p keymother-daemon -p keymother -p keymother-terminal
    # Stripped with the cross binutils (cargo-deb looks them up by the Debian triple).
    env "STRIP_aarch64-linux-gnu=aarch64-linux-gnu-strip" \
        "OBJCOPY_aarch64-linux-gnu=aarch64-linux-gnu-objcopy" \
        cargo deb --no-build --strip --target "$rust_target" -p keymother-daemon \
        --output "$work/keymother.deb"
)
deb_version=$(dpkg-deb -f "$work/keymother.deb" Version)
rm -f "$out"/keymother_*.deb
cp "$work/keymother.deb" "$out/keymother_${deb_version}_arm64.deb"

# ---------------------------------------------------------------------------------------
stage "root file system (mmdebstrap, $suite arm64)"
packages=$(grep -v '^[[:space:]]*\(#\|$\)' "$here/packages.txt" | xargs | tr ' ' ',')
rootfs="$work/rootfs"
# image/rootfs/ goes in twice: before the packages, so that the kernel's installation already
# finds the initramfs and raspi-firmware settings (and our conffiles are kept, confold), and
# after them, because mmdebstrap writes its own /etc/fstab, /etc/hostname and /etc/hosts.
# dpkg leaves out manuals, translations and documentation (but copyright files and keymother's
# own), and the Wi-Fi and Bluetooth drivers; the rule stays in the image for later updates.
mmdebstrap --mode=root --arch=arm64 --variant=minbase \
    --components=main,non-free-firmware \
    --include="$packages" \
    --aptopt='APT::Sandbox::User "root"' \
    --dpkgopt=force-confdef --dpkgopt=force-confold \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-include=/usr/share/doc/keymother/*' \
    --dpkgopt='path-exclude=/usr/lib/modules/*/kernel/drivers/net/wireless/*' \
    --dpkgopt='path-exclude=/usr/lib/modules/*/kernel/net/wireless/*' \
    --dpkgopt='path-exclude=/usr/lib/modules/*/kernel/net/mac80211/*' \
    --dpkgopt='path-exclude=/usr/lib/modules/*/kernel/net/bluetooth/*' \
    --dpkgopt='path-exclude=/usr/lib/modules/*/kernel/drivers/bluetooth/*' \
    --setup-hook='mkdir -p "$1/boot/firmware"' \
    --setup-hook="sync-in '$here/rootfs/' /" \
    --customize-hook="sync-in '$here/rootfs/' /" \
    --customize-hook="copy-in '$work/keymother.deb' /tmp" \
    --customize-hook='chroot "$1" dpkg -i /tmp/keymother.deb' \
    --customize-hook='rm -f "$1/tmp/keymother.deb"' \
    "$suite" "$rootfs" "$mirror"

stage "appliance settings"
"$here/customize.sh" "$rootfs" "$work/data" "$root_password_hash"

# ---------------------------------------------------------------------------------------
stage "partitions and image"
"$here/assemble.sh" "$rootfs" "$work/data" "$data_mib" "$out/keymother-arm64.img"

stage "compress and checksum"
zstd -q -f -T0 -10 "$out/keymother-arm64.img" -o "$out/keymother-arm64.img.zst"
(cd "$out" && sha256sum keymother-arm64.img.zst >keymother-arm64.img.zst.sha256)

stage "systemd-analyze security (offline)"
# The host's systemd reads the unit from the built root; the image's own systemd is newer.
systemd-analyze security --offline=yes --root="$rootfs" keymotherd.service \
    | tee "$out/security.txt" | tail -n 3

stage done
# The staging trees are large and rebuilt every time; the image, the package and the reports
# stay. KEYMOTHER_KEEP_WORK=1 keeps them for inspection.
[ "${KEYMOTHER_KEEP_WORK:-0}" = 1 ] || rm -rf "$work"
total=$(($(date +%s) - build_start))
printf '%-40s %4d s\n' "total" "$total" | tee -a "$timings"
raw=$(stat -c %s "$out/keymother-arm64.img")
compressed=$(stat -c %s "$out/keymother-arm64.img.zst")
printf 'image: %s (%d MiB raw, %d MiB compressed)\n' "$out/keymother-arm64.img.zst" \
    $((raw / 1048576)) $((compressed / 1048576)) | tee -a "$timings"
