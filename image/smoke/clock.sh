#!/bin/sh
# Runs INSIDE the emulated appliance during image/smoke.sh (a stage of guest.sh, on a machine
# without a real-time clock: raspi3b). With the site's settings in place (the shipped
# settings require a trusted clock), the clock is reported not set, an operator's login is
# refused with "clock not set", two people (a custodian and an operator) each give the time
# from their own watch, which sets the clock under dual control, and the login is accepted.
# The watches here read the host's time: HOST_TIME (Unix seconds, from the plan, taken just
# before qemu started) plus the guest's uptime.
set -eu
disk=/run/kmsmoke
say() { echo "KMSMOKE $*"; }
fail() { say "FAIL $*"; exit 1; }
trap 'status=$?; [ $status -eq 0 ] || say "FAIL clock.sh ended with status $status"' EXIT
. "$disk/site.sh"
watch() { date -u -d "@$((HOST_TIME + $(cut -d. -f1 /proc/uptime)))" +%Y-%m-%dT%H:%M:%SZ; }
login() { keymother operator login --certificate "$disk/operator.pem" --key "$disk/operator.key" 2>&1; }

install_site_settings
status=$(keymother clock status)
say "clock: $status"
case "$status" in *"NOT SET"*) ;; *) fail "the clock is trusted on a machine without an RTC" ;; esac
if refused=$(login); then
    fail "an operator logged in while the clock was not set"
fi
case "$refused" in
*"clock not set"*) say "clock: login refused: clock not set" ;;
*) fail "the login was refused for another reason: $refused" ;;
esac
keymother clock set --time "$(watch)" --name "Carol Custodian" --role custodian | sed 's/^/KMSMOKE clock: /'
sleep 2
keymother clock set --time "$(watch)" --name "Oscar Operator" --role operator | sed 's/^/KMSMOKE clock: /'
status=$(keymother clock status)
say "clock: $status"
case "$status" in *"dual-control"*) ;; *) fail "the clock is not set after two readings" ;; esac
accepted=$(login) || fail "the login was refused after the clock was set: $accepted"
say "clock: login accepted: $accepted"
keymother audit verify | sed 's/^/KMSMOKE clock: /'
say "clock: set under dual control"
