#!/bin/sh
# Runs INSIDE the emulated appliance during image/smoke.sh, from the test-only disk (label
# KMSMOKE, mounted at /run/kmsmoke by keymother-smoke.service; the image never carries it):
# runs the stages smoke.sh planned for this machine, in order, then powers the machine off,
# or reboots it when a stage asked to (by writing "reboot" to /run/kmsmoke-next).
#
# /run/kmsmoke/plan, written by smoke.sh, sets MACHINE (virt, raspi3b), CARD_MIB (the
# emulated card's size) and STAGES (stage names); stage NAME is NAME.sh on the disk, run
# with the plan's variables in its environment. A stage reports on the console with lines
# starting "KMSMOKE", which smoke.sh reads; "KMSMOKE FAIL ..." ends the test.
set -eu
disk=/run/kmsmoke
set -a
. "$disk/plan"
set +a
for stage in $STAGES; do
    echo "KMSMOKE stage $stage"
    status=0
    sh "$disk/$stage.sh" || status=$?
    [ $status -eq 0 ] || { echo "KMSMOKE FAIL stage $stage ended with status $status"; exit 1; }
done
if [ "$(cat /run/kmsmoke-next 2>/dev/null || true)" = reboot ]; then
    echo "KMSMOKE rebooting"
    systemctl reboot
else
    echo "KMSMOKE done"
    systemctl poweroff
fi
