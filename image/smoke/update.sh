#!/bin/sh
# Runs INSIDE the emulated appliance during image/smoke.sh (a stage of guest.sh, virt). On
# the boot that ends in a reboot (the first), applies the keymother package from the test
# disk as an administrator would from a USB stick (keymother-update: the root writable only
# for dpkg); on the next boot, reports the version that runs. The vault must not notice:
# the next stage's terminal gets the next key index.
set -eu
disk=/run/kmsmoke
say() { echo "KMSMOKE $*"; }
fail() { say "FAIL $*"; exit 1; }
trap 'status=$?; [ $status -eq 0 ] || say "FAIL update.sh ended with status $status"' EXIT
installed=$(dpkg-query --show --showformat '${Version}' keymother)
if [ "$(cat /run/kmsmoke-next 2>/dev/null || true)" != reboot ]; then
    say "update: running keymother $installed"
    exit 0
fi
keymother-update --check "$disk/keymother-update.deb" | sed 's/^/KMSMOKE update: /'
keymother-update "$disk/keymother-update.deb" 2>&1 | sed 's/^/KMSMOKE update: /'
now=$(dpkg-query --show --showformat '${Version}' keymother)
[ "$now" != "$installed" ] || fail "keymother is still $installed"
grep -qs '^[^ ]* / [^ ]* ro[, ]' /proc/mounts || fail "the root stayed writable"
keymother status >/dev/null || fail "keymotherd does not answer after the update"
say "update: applied keymother $installed -> $now; the root is read-only again"
