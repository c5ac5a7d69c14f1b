#!/bin/sh
# Runs INSIDE the emulated appliance during image/smoke.sh (a stage of guest.sh, raspi3b):
# the bench's GPIO on the Pi's own GPIO controller, through the kernel's character device.
# keymotherd must watch the tamper input (GPIO23 on /dev/gpiochipN, by its device-tree name)
# with no "not watched" in the journal. qemu's raspi3b models no pull-up, so the input reads
# low from the start, which the shipped settings (active low, a normally-open switch) take
# as an opened case: the appliance must have locked at once and audited the tamper, and stay
# locked (the key ceremonies would have to be held again).
# (Debian's arm64 kernel is built without gpio-sim, so the -M virt machine, which has no
# GPIO controller, cannot have its tamper line pulled.)
set -eu
say() { echo "KMSMOKE $*"; }
fail() { say "FAIL $*"; exit 1; }
trap 'status=$?; [ $status -eq 0 ] || say "FAIL tamper.sh ended with status $status"' EXIT
json=$(keymother status --json | tr -d ' \n')
echo "$json" | grep -q '"tamper_input":{"state":"watched","input":"GPIO23"' ||
    fail "tamper: the tamper input is not watched: $json"
chips=$(ls /dev/gpiochip* | xargs)
say "tamper: keymotherd watches GPIO23 through the character device ($chips)"
if journalctl -u keymotherd -o cat --no-pager | grep -q 'not watched'; then
    fail "tamper: the journal says the tamper input was not watched"
fi
echo "$json" | grep -q '"state":"tampered"' || fail "tamper: the appliance did not lock: $json"
say "tamper: $(keymother status | grep -E '^state')"
keymother audit export --out /run/kmsmoke-audit.csv >/dev/null
grep -q ',tamper,system,input=GPIO23' /run/kmsmoke-audit.csv || fail "tamper: no tamper row in the audit trail"
say "tamper: audited: $(grep ',tamper,' /run/kmsmoke-audit.csv | head -n 1 | cut -d, -f1-5)"
keymother audit verify | sed 's/^/KMSMOKE tamper: /'
say "tamper: locked, audited and the keys stopped"
