#!/bin/sh
# Runs INSIDE the emulated appliance during image/smoke.sh, from the test-only provisioning
# disk (mounted at /run/kmsmoke); the image never carries it. It does what the site's people
# do at the appliance's console, with the keymother command only:
#   first boot:  the security officer installs the site's CA certificates and a settings
#                drop-in (the bench's serial line) and restarts keymotherd; two custodians
#                each load the KEK and the TTK from components; a key file for this
#                appliance is imported (written here by the front end's writer, which the
#                test plays too, because only now is the appliance's device id known);
#   every boot:  the operator logs in; the script reports on the console (lines starting
#                KMSMOKE) and waits for the host's terminal to take one key; after the first
#                boot it asks guest.sh for a reboot, so that the next boot shows what the
#                vault kept.
# A stage of guest.sh (STAGES in smoke.sh's plan); check.sh has checked the boot before it.
set -eu
disk=/run/kmsmoke
say() { echo "KMSMOKE $*"; }
fail() { say "FAIL $*"; exit 1; }
# Any command that fails ends the script (set -e): say so, for the host to stop waiting.
trap 'status=$?; [ $status -eq 0 ] || say "FAIL provision.sh ended with status $status"' EXIT
# One line of `keymother status --json`, whatever its layout.
field() { keymother status --json | tr -d ' \n' | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }
. "$disk/site.sh"

say "data: $(findmnt -no SOURCE,FSTYPE /data) vault: $(findmnt -no SOURCE /var/lib/keymother)"

kek_kcv=$(keymother status --json | tr -d ' \n' | sed -n 's/.*"KEK":{[^}]*"kcv":"\([^"]*\)".*/\1/p')
if [ -z "$kek_kcv" ]; then
    say "provisioning: first boot"
    install_site_settings
    keymother ceremony --secret kek --alg AES-256 --components 2 \
        --custodian "Carol Custodian" --custodian "Dan Custodian" <"$disk/kek-components"
    keymother ceremony --secret ttk --alg AES-256 --components 2 \
        --custodian "Carol Custodian" --custodian "Dan Custodian" <"$disk/ttk-components"
    device_id=$(field device_id)
    case "$device_id" in KM-?*) say "device id: $device_id" ;; *) fail "device id '$device_id' is not the first boot's KM-..." ;; esac
    keymother keyfile generate --kek-alg AES-256 --alg AES-256 --count 10 \
        --device-id "$device_id" --batch-id SMOKE-1 --issuer "keymother smoke test" \
        --out /run/kmsmoke-keys.kmk <"$disk/kek"
    chmod 0644 /run/kmsmoke-keys.kmk
    keymother import /run/kmsmoke-keys.kmk
    rm -f /run/kmsmoke-keys.kmk
    first_boot=yes
else
    say "provisioned before: KEK $kek_kcv, device id $(field device_id)"
    first_boot=no
fi

keymother operator login --certificate "$disk/operator.pem" --key "$disk/operator.key"
rows_before=$(field smn_rows)
say "state: $(field state), SMN rows: $rows_before"
keymother inventory | sed 's/^/KMSMOKE inventory: /'
say "ready for a terminal"

# The host's terminal injects now; its SMN row is the proof on this side.
waited=0
while [ "$(field smn_rows)" = "$rows_before" ]; do
    waited=$((waited + 1))
    [ $waited -le 600 ] || fail "no injection within 600 s"
    sleep 1
done
keymother smn | sed 's/^/KMSMOKE smn: /'
keymother inventory | sed 's/^/KMSMOKE inventory: /'
keymother audit verify 2>&1 | sed 's/^/KMSMOKE audit: /'
[ "$first_boot" = no ] || echo reboot >/run/kmsmoke-next
