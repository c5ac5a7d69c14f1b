#!/usr/bin/env bash
# image/customize.sh ROOTFS DATA [ROOT_PASSWORD_HASH]: turns the root file system mmdebstrap
# made (with keymother installed) into the appliance's read-only root, and lays out DATA, the
# starting contents of the persistent data partition. Called by image/build.sh.
set -euo pipefail
rootfs=$1
data=$2
root_password_hash=${3:-}

# A read-only root cannot keep a machine ID: an empty /etc/machine-id makes systemd use a
# fresh one for each boot, mounted over it from /run.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"

# Nothing runs on a timer to fetch or tidy: there is no network, and the root is read-only.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer dpkg-db-backup.timer; do
    systemctl --root="$rootfs" --quiet mask "$unit"
done
systemctl --root="$rootfs" --quiet is-enabled keymotherd.service || {
    echo "customize.sh: keymotherd.service is not enabled by the keymother package" >&2
    exit 1
}

# No network services: nothing that listens, fetches addresses or joins a network. A package
# list change that drags one in fails the build here rather than shipping it.
for program in sshd dropbear wpa_supplicant iwd dhclient dhcpcd avahi-daemon ntpd chronyd \
    rpcbind exim4 cupsd; do
    for directory in usr/sbin usr/bin; do
        if [ -e "$rootfs/$directory/$program" ]; then
            echo "customize.sh: the root file system has /$directory/$program, a network service" >&2
            exit 1
        fi
    done
done
for unit in systemd-networkd.service systemd-networkd.socket systemd-resolved.service \
    systemd-timesyncd.service ssh.service ssh.socket; do
    if systemctl --root="$rootfs" --quiet is-enabled "$unit" 2>/dev/null; then
        echo "customize.sh: $unit is enabled in the root file system" >&2
        exit 1
    fi
done

# Mount points on the read-only root for the data partition and its bind mounts. systemd's
# random seed is one of them (a file): the image carries no seed, each card makes its own.
mkdir -p "$rootfs/data" "$rootfs/var/lib/keymother" "$rootfs/etc/keymother/keymotherd.toml.d" \
    "$rootfs/etc/keymother/pki" "$rootfs/media"
install -m 0600 -o 0 -g 0 /dev/null "$rootfs/var/lib/systemd/random-seed"

# What the boot needs from the root: the file systems' checks and the data partition's
# growth (rootfs/usr/local/lib/keymother/grow-data).
for program in fsck fsck.ext4 e2fsck resize2fs dumpe2fs sfdisk partx findmnt; do
    [ -x "$rootfs/usr/sbin/$program" ] || [ -x "$rootfs/usr/bin/$program" ] || {
        echo "customize.sh: the root file system has no $program (packages.txt)" >&2
        exit 1
    }
done

# The kernel command line raspi-firmware wrote: one `ro`, no `rw` (its hook always writes
# `rw`, and raspi-firmware's own postinst may have run it after our z60 hook did).
KEYMOTHER_FIRMWARE_DIR="$rootfs/boot/firmware" "$rootfs/usr/local/lib/keymother/firmware-cmdline"

if [ -n "$root_password_hash" ]; then
    usermod --root "$rootfs" --password "$root_password_hash" root
fi

# The data partition: the vault (only keymotherd may enter) and the site's settings (root
# writes them, keymotherd's group reads them), owned by the IDs the root file system gave.
uid=$(awk -F: '$1 == "keymother" { print $3 }' "$rootfs/etc/passwd")
gid=$(awk -F: '$1 == "keymother" { print $3 }' "$rootfs/etc/group")
if [ -z "$uid" ] || [ -z "$gid" ]; then
    echo "customize.sh: the keymother user or group is missing from $rootfs (sysusers.d did not run?)" >&2
    exit 1
fi
rm -rf "$data"
install -d -m 0755 -o 0 -g 0 "$data"
install -d -m 0700 -o "$uid" -g "$gid" "$data/vault"
install -d -m 0755 -o 0 -g 0 "$data/etc"
install -d -m 0750 -o 0 -g "$gid" "$data/etc/keymother" "$data/etc/keymother/keymotherd.toml.d" \
    "$data/etc/keymother/pki"
install -d -m 0755 -o 0 -g 0 "$data/systemd"
install -m 0600 -o 0 -g 0 /dev/null "$data/systemd/random-seed"
install -m 0644 -o 0 -g 0 /dev/stdin "$data/README" <<'EOF'
keymother data partition (mounted at /data)

vault/                          the vault: bind-mounted at /var/lib/keymother (keymotherd only)
etc/keymother/keymotherd.toml.d the site's settings drop-ins: bind-mounted at
                                /etc/keymother/keymotherd.toml.d
etc/keymother/pki               the site's CA certificates and CRLs: bind-mounted at
                                /etc/keymother/pki
systemd/random-seed             systemd's random seed: bind-mounted at
                                /var/lib/systemd/random-seed

Everything else on the appliance is read-only or volatile. See /usr/share/doc/keymother.
EOF
