#!/usr/bin/env bash
# image/smoke.sh: boots the image image/build.sh made under qemu-system-aarch64, on two
# machines, each from a copy-on-write overlay of the image, larger than the image (an SD card
# of CARD_MIB), so the built image is left as it was and the data partition has room to grow:
#
#   image/smoke.sh [--image FILE] [--timeout SECONDS] [--machines "virt raspi3b"]
#
# virt     qemu's virt machine (cortex-a57) with the image's kernel and initramfs from its
#          firmware partition, the card as a virtio disk, and an emulated USB serial adapter
#          (qemu's usb-serial, an FTDI ttyUSB device for the guest) wired to a
#          pseudo-terminal here: the bench's serial line.
#          boot 1: keymotherd READY; the boot's checks (check.sh, below); provisioning as the
#          site's people would (smoke/provision.sh); the reference terminal here injects a
#          key over the serial line and checks its KCV; the guest shows the SMN row; reboot.
#          boot 2: READY; the checks again (the data partition is not grown twice); the vault
#          kept its keys: the next terminal gets the next index; power off.
# raspi3b  qemu's Raspberry Pi 3 B, booted as the Pi's firmware would boot the card: the
#          image's own kernel, initramfs, device tree (bcm2837-rpi-3-b.dtb) and cmdline.txt,
#          from its firmware partition; the card on the Pi's SD controller; the console on
#          the mini UART (ttyS1, qemu's second serial port).
#          one boot: keymotherd READY; the boot's checks; power off.
#
# The boot's checks (smoke/check.sh, in the guest): no failed unit once the boot is over,
# the root read-only and refusing a write, the root checked by the initramfs' fsck and the
# data partition by systemd-fsck@, the data partition and its file system grown to the end
# of the card; at the end, no unit failed on the way down either (the console shows it).
#
# Test-only pieces, which the image never carries: a disk labelled KMSMOKE (virtio on virt,
# USB mass storage on raspi3b) with the guest's scripts (smoke/guest.sh runs the stages
# listed in its plan), the pki test fixtures' CAs and operator credential, the bench's
# settings drop-in and fresh key components; and the unit that runs guest.sh,
# smoke/keymother-smoke.service, passed as a systemd credential on the kernel command line.
#
# Adding a stage: a guest script smoke/NAME.sh (it reports with "KMSMOKE ..." lines), NAME in
# the machine's STAGES (run_virt, run_raspi3b), and a host function that waits for its lines
# and judges them (see stage_check), called at its place in run_virt or run_raspi3b.
#
# Each step is printed with its time since that machine's qemu started; the summary gives
# the host's and the guest's time of each boot. The console logs (with the journal forwarded
# to them) stay in out/smoke/console-MACHINE.log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/.." && pwd)
image="$here/out/keymother-arm64.img"
timeout=900
machines="virt raspi3b"
while [ $# -gt 0 ]; do
    case "$1" in
    --image) image=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --machines) machines=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "smoke.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -f "$image" ] || { echo "smoke.sh: no image at $image; run image/build.sh first" >&2; exit 1; }
for machine in $machines; do
    case "$machine" in virt | raspi3b) ;; *) echo "smoke.sh: no machine '$machine' (virt, raspi3b)" >&2; exit 2 ;; esac
done
for tool in qemu-system-aarch64 qemu-img mcopy mkfs.vfat sfdisk; do
    command -v "$tool" >/dev/null || {
        echo "smoke.sh: $tool is missing; image/build.sh installs it" >&2
        exit 1
    }
done

work="$(dirname "$image")/smoke"
rm -rf "$work"
mkdir -p "$work"
qemu_pid=
cleanup() {
    [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
    rm -f "$work"/provision-*.vfat "$work"/card-*.qcow2
}
trap cleanup EXIT
smoke_started=$(date +%s)

# ---------------------------------------------------------------------------------------
# The reference terminal, built for this machine.
target_dir=$(cd "$workspace" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
(cd "$workspace" && cargo build --release --locked -q -p keymother-terminal)
terminal="$target_dir/release/keymother-terminal"

# The kernel, initramfs, Pi 3 device tree and command line from the image's firmware
# partition (partition 1), as the Pi's firmware reads them (config.txt names the kernel and
# initramfs).
firmware_offset=$(($(sfdisk --dump "$image" | sed -n 's/.*1 : start= *\([0-9]*\),.*/\1/p') * 512))
firmware_file() { mcopy -n -i "$image@@$firmware_offset" "::$1" "$work/$2"; }
firmware_file config.txt config.txt
kernel=$(sed -n 's/^kernel=//p' "$work/config.txt")
initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$work/config.txt")
[ -n "$kernel" ] && [ -n "$initrd" ] || { echo "smoke.sh: config.txt names no kernel or initramfs" >&2; exit 1; }
firmware_file "$kernel" vmlinuz
firmware_file "$initrd" initrd.img
firmware_file cmdline.txt cmdline.txt
firmware_file bcm2837-rpi-3-b.dtb bcm2837-rpi-3-b.dtb

# The card: a power of two (qemu's raspi machines take no other SD card size) at least
# 512 MiB larger than the image, so that the data partition grows at the first boot.
image_mib=$(($(stat -c %s "$image") / 1048576))
card_mib=1024
while [ "$card_mib" -lt $((image_mib + 512)) ]; do card_mib=$((card_mib * 2)); done
new_card() { # MACHINE: a fresh overlay of the image, CARD_MIB large
    qemu-img create -q -f qcow2 -F raw -b "$(realpath "$image")" "$work/card-$1.qcow2" "${card_mib}M"
}

# The test's disk (label KMSMOKE) for MACHINE, with the guest's scripts and its plan
# (STAGES: the guest's stages, in order; see smoke/guest.sh). Provisioning also needs the
# site's CAs and operator credential (the pki test fixtures, made with openssl), the bench's
# settings, and fresh key components for this run, which stay only on the disk image (it is
# removed when the test ends).
random_hex() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F; }
xor_hex() { # the XOR of two hex strings of equal length, 4 bytes at a time
    local a=$1 b=$2 result='' i
    for ((i = 0; i < ${#a}; i += 8)); do
        result+=$(printf '%08X' $((0x${a:i:8} ^ 0x${b:i:8})))
    done
    echo "$result"
}
# The keymother package build.sh made, with its version raised ("+smoke1"): the same files.
repackage_newer() { # OUT
    local deb unpacked
    deb=$(ls "$(dirname "$image")"/keymother_*_arm64.deb | head -n 1)
    [ -f "$deb" ] || fail "no keymother package beside the image for the update stage"
    unpacked=$(mktemp -d)
    dpkg-deb -R "$deb" "$unpacked"
    sed -i 's/^Version: .*/&+smoke1/' "$unpacked/DEBIAN/control"
    dpkg-deb -b --root-owner-group "$unpacked" "$1" >/dev/null
    rm -rf "$unpacked"
}
new_test_disk() { # MACHINE STAGES...
    local machine=$1 stage files="$work/disk-$1"
    shift
    rm -rf "$files"
    mkdir -p "$files"
    printf 'MACHINE=%s\nCARD_MIB=%s\nHOST_TIME=%s\nSTAGES="%s"\n' "$machine" "$card_mib" "$(date +%s)" "$*" >"$files/plan"
    cp "$here/smoke/guest.sh" "$files/"
    for stage in "$@"; do
        cp "$here/smoke/$stage.sh" "$files/"
        if [ "$stage" = update ]; then
            # The package the image was built with, as a newer version: what an
            # administrator brings on a USB stick.
            repackage_newer "$files/keymother-update.deb"
        fi
        if [ "$stage" = provision ] || [ "$stage" = clock ]; then
            cp "$here/smoke/site.sh" "$files/"
            mkdir -p "$files/pki"
            local fixtures="$workspace/pki/tests/fixtures"
            cp "$fixtures/ca-device.pem" "$files/pki/device-ca.pem"
            cp "$fixtures/ca-kdh.pem" "$files/pki/kdh-ca.pem"
            cp "$fixtures/ca-operator.pem" "$files/pki/operator-ca.pem"
            cp "$fixtures/operator.der" "$files/operator.pem"
            cp "$fixtures/test-only-operator.key" "$files/operator.key"
            cp "$here/smoke/50-bench.toml" "$files/"
        fi
        if [ "$stage" = provision ]; then
            local kek_1 kek_2 ttk_1 ttk_2
            kek_1=$(random_hex) kek_2=$(random_hex) ttk_1=$(random_hex) ttk_2=$(random_hex)
            printf '%s\n%s\n' "$kek_1" "$kek_2" >"$files/kek-components"
            printf '%s\n%s\n' "$ttk_1" "$ttk_2" >"$files/ttk-components"
            xor_hex "$kek_1" "$kek_2" >"$files/kek"
            ttk=$(xor_hex "$ttk_1" "$ttk_2")
        fi
    done
    mkfs.vfat -n KMSMOKE -C "$work/provision-$machine.vfat" 8192 >/dev/null
    mcopy -s -i "$work/provision-$machine.vfat" "$files"/* ::
    rm -rf "$files"
}

# The unit that runs guest.sh, as a credential on the kernel command line: systemd's debug
# generator turns systemd.extra-unit.* credentials into units (systemd 256 and later). Its
# comments stay here: arm64 kernels take at most 2048 bytes of command line (longer is cut).
smoke_unit=$(grep -v '^#' "$here/smoke/keymother-smoke.service" | base64 -w0)
# systemd waits 90 s for a device (/dev/disk/by-label/KM-DATA) by default. Under emulation
# on a busy 2-core machine, udev itself has started as late as 85 s after systemd began to
# wait for the data partition (raspi3b, 2 other builds running): more time for the test
# only; a real Pi reaches udev's coldplug in seconds.
test_cmdline="systemd.journald.forward_to_console=1 systemd.default_device_timeout_sec=600"
test_cmdline+=" systemd.set_credential_binary=systemd.extra-unit.keymother-smoke.service:$smoke_unit"
test_cmdline+=" systemd.wants=keymother-smoke.service"
check_cmdline() {
    [ ${#1} -lt 2048 ] || { echo "smoke.sh: the kernel command line is ${#1} bytes; arm64 takes 2047" >&2; exit 1; }
}

# ---------------------------------------------------------------------------------------
milliseconds() { echo $(($(date +%s%N) / 1000000)); }
started=$(milliseconds)
elapsed() { # seconds since this machine's qemu started, with one decimal
    local tenths=$((($(milliseconds) - started) / 100))
    echo "$((tenths / 10)).$((tenths % 10))"
}
say() { printf '[%6s s] %s\n' "$(elapsed)" "$*"; }
clean_console() { [ -e "$console" ] || return 0; tr -d '\r' <"$console" | sed 's/\x1b\[[0-9;]*m//g'; }
fail() {
    say "FAILED: $*"
    echo "--- the guest's console, last 60 lines ($console):"
    clean_console | tail -n 60
    exit 1
}

# Starts qemu for MACHINE with the arguments given; the console goes to console-MACHINE.log
# and the bench's serial line to a pseudo-terminal, whose name is in $bench_pty.
start_qemu() {
    local machine=$1
    shift
    console="$work/console-$machine.log"
    started=$(milliseconds)
    qemu-system-aarch64 "$@" -chardev pty,id=bench -device usb-serial,chardev=bench \
        -nic none -display none -monitor none >"$work/qemu-$machine.log" 2>&1 &
    qemu_pid=$!
    say "$machine: qemu started (pid $qemu_pid, a $card_mib MiB card)"
    bench_pty=
    for _ in $(seq 50); do
        bench_pty=$(sed -n 's/.*char device redirected to \(\/dev\/pts\/[0-9]*\) (label bench).*/\1/p' "$work/qemu-$machine.log")
        [ -n "$bench_pty" ] && break
        sleep 0.1
    done
    [ -n "$bench_pty" ] || fail "qemu did not say which pseudo-terminal is the bench's serial line"
}

# Waits until the console has its COUNT-th line matching PATTERN, counting only after the
# first line matching AFTER when that is given (a later boot begins after "KMSMOKE
# rebooting"); prints it.
wait_for() {
    local pattern=$1 count=$2 what=$3 after=${4:-} line
    while :; do
        line=$(clean_console |
            awk -v after="$after" 'after == "" || seen { print; next } $0 ~ after { seen = 1 }' |
            grep -a -E "$pattern" | sed -n "${count}p") || true
        if [ -n "$line" ]; then
            say "$what"
            echo "$line"
            return 0
        fi
        kill -0 "$qemu_pid" 2>/dev/null || fail "qemu ended while waiting for: $what"
        grep -a -q 'KMSMOKE FAIL' "$console" 2>/dev/null && fail "the guest reported a failure"
        [ $(($(milliseconds) - started)) -le $((timeout * 1000)) ] ||
            fail "no '$what' within $timeout s"
        sleep 0.5
    done
}

# Waits for qemu to end (the guest powered off).
wait_end() {
    local waited=0
    while kill -0 "$qemu_pid" 2>/dev/null; do
        waited=$((waited + 1))
        [ $waited -le 1200 ] || fail "qemu did not end within 120 s of the guest's power-off"
        sleep 0.1
    done
    wait "$qemu_pid" || true
    qemu_pid=
    say "qemu ended"
}

# The boot's times: READY on the host's clock (since qemu started) and on the guest's
# (its uptime when systemd saw READY=1, from the journal forwarded to the console).
summary=()
record_ready() { # LABEL AFTER
    local host guest
    host=$(elapsed)
    guest=$(clean_console | awk -v after="${2:-}" 'after == "" || seen { print; next } $0 ~ after { seen = 1 }' |
        sed -n 's/^\[ *\([0-9]*\.[0-9]\)[0-9]*\] systemd\[1\]: Started keymotherd\.service.*/\1/p' | head -n1)
    summary+=("$(printf '%-34s READY %6s s after qemu started (guest uptime %s s)' "$1" "$host" "${guest:-?}")")
}

# systemd's journal line when keymotherd sent READY=1 (Type=notify), forwarded to the
# console. (Its "[  OK  ] Started" status line is not always there: systemd stops printing
# status lines on the console once a getty runs on it.)
started_keymotherd='systemd\[1\]: Started keymotherd\.service'

# ---------------------------------------------------------------------------------------
# Host-side stages. Each waits for its guest stage's lines on the console (after AFTER, the
# boundary of the boot it belongs to) and judges them.

stage_ready() { # LABEL AFTER
    wait_for "$started_keymotherd" 1 "$1: keymotherd READY" "${2:-}"
    record_ready "$1" "${2:-}"
}

# check.sh: the guest judges, the host shows what it found. GROWN is "grown" on a card's
# first boot (the data partition and file system were grown) or "kept" later (nothing to do).
stage_check() { # LABEL AFTER GROWN
    local label=$1 after=$2 grown=$3 lines
    wait_for 'KMSMOKE checks passed' 1 "$label: the boot's checks passed" "$after" >/dev/null
    say "$label: the boot's checks passed"
    lines=$(clean_console | awk -v after="$after" 'after == "" || seen { print; next } $0 ~ after { seen = 1 }' |
        grep -a 'KMSMOKE check:' | sed 's/.*KMSMOKE check: /  /')
    echo "$lines"
    case "$grown" in
    grown)
        echo "$lines" | grep -q 'grow: growing partition' || fail "$label: the data partition was not grown"
        echo "$lines" | grep -q 'grow: growing the file system' || fail "$label: /data's file system was not grown"
        ;;
    kept)
        echo "$lines" | grep -q 'grow: .* already reaches the end of the card' ||
            fail "$label: the data partition was grown again"
        echo "$lines" | grep -q 'grow: the file system .* fills its partition' ||
            fail "$label: /data's file system was grown again"
        ;;
    esac
}

# update.sh on the first boot: keymother-update applied the newer package from the test disk.
stage_update_applied() { # LABEL
    wait_for 'KMSMOKE update: applied keymother' 1 "$1: keymother-update applied the package from the stick" >/dev/null
    clean_console | grep -a 'KMSMOKE update:' | sed 's/.*KMSMOKE update: /  /'
}

# tamper.sh (raspi3b): the Pi's GPIO opened through /dev/gpiochipN, never "not watched";
# the tamper input (low under qemu: no pull-up) locked the appliance and was audited.
stage_tamper() { # LABEL AFTER
    wait_for 'KMSMOKE tamper: keymotherd watches GPIO23' 1 "$1: the bench GPIO opened through the character device" "$2" >/dev/null
    wait_for 'KMSMOKE tamper: locked, audited' 1 "$1: the tamper input locked the appliance and was audited" "$2" >/dev/null
    clean_console | grep -a 'KMSMOKE tamper:' | sed 's/.*KMSMOKE tamper: /  /'
}

# clock.sh (no real-time clock): the clock not set, a login refused for it, the clock set by
# two people, the login accepted.
stage_clock() { # LABEL
    wait_for 'KMSMOKE clock: login refused: clock not set' 1 "$1: no RTC: the clock is not set and a login is refused" >/dev/null
    wait_for 'KMSMOKE clock: set under dual control' 1 "$1: two people set the clock; the login is accepted" >/dev/null
    clean_console | grep -a 'KMSMOKE clock:' | sed 's/.*KMSMOKE clock: /  /'
}

# Injects one key from a terminal with SERIAL; prints "index kcv".
inject() {
    local serial=$1 output
    output=$(echo "$ttk" | "$terminal" --port "$bench_pty" --serial "$serial" \
        --timeout-ms 3000 2>&1) || fail "terminal $serial: $output"
    say "terminal $serial: $output"
    echo "$output" | sed -n 's/^injected key \([0-9]*\), SMN [^,]*, KCV \([0-9A-F]*\),.*/\1 \2/p' >"$work/injected"
    [ -s "$work/injected" ] || fail "terminal $serial printed no injected key"
}

# Once the machine is off: no unit failed at any point, shutdowns included (check.sh sees
# only the boot; systemd-random-seed.service, say, writes its seed on the way down).
stage_nothing_failed() { # LABEL
    local failures
    failures=$(clean_console | grep -a -E '\[FAILED\]|Failed with result|Failed to start' || true)
    [ -z "$failures" ] || fail "$1: units failed:"$'\n'"$failures"
    say "$1: no unit failed, boots and shutdowns included"
}

# ---------------------------------------------------------------------------------------
run_virt() {
    new_card virt
    new_test_disk virt check provision update
    local append
    append="root=LABEL=KM-ROOT ro rootwait console=ttyAMA0 net.ifnames=0 $test_cmdline"
    check_cmdline "$append"
    start_qemu virt -M virt -cpu cortex-a57 -smp 2 -m 1024 \
        -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -append "$append" \
        -drive if=none,id=card,file="$work/card-virt.qcow2",format=qcow2 -device virtio-blk-pci,drive=card \
        -drive if=none,id=provision,file="$work/provision-virt.vfat",format=raw,readonly=on \
        -device virtio-blk-pci,drive=provision \
        -device qemu-xhci -serial file:"$work/console-virt.log"
    say "bench serial line: $bench_pty (the guest's /dev/ttyUSB0)"

    stage_ready "virt boot 1"
    stage_check "virt boot 1" "" grown
    wait_for 'KMSMOKE ready for a terminal' 1 "virt boot 1: provisioned, operator logged in"
    inject SMOKE0001
    read -r index_1 kcv_1 <"$work/injected"
    smn_1=$(wait_for "KMSMOKE smn: .*SMOKE0001" 1 "virt boot 1: the guest's SMN registry has the row")
    echo "$smn_1"
    echo "$smn_1" | grep -q "$kcv_1" || fail "the SMN row does not carry the terminal's KCV $kcv_1: $smn_1"
    stage_update_applied "virt boot 1"

    local reboot='KMSMOKE rebooting'
    stage_ready "virt boot 2" "$reboot"
    stage_check "virt boot 2" "$reboot" kept
    wait_for 'KMSMOKE provisioned before' 1 "virt boot 2: the vault kept its keys and secrets" "$reboot"
    wait_for 'KMSMOKE ready for a terminal' 1 "virt boot 2: operator logged in" "$reboot"
    inject SMOKE0002
    read -r index_2 kcv_2 <"$work/injected"
    [ $((10#$index_2)) -eq $((10#$index_1 + 1)) ] ||
        fail "boot 2's terminal got key $index_2, not the next after $index_1"
    smn_2=$(wait_for "KMSMOKE smn: .*SMOKE0002" 1 "virt boot 2: the guest's SMN registry has the new row" "$reboot")
    echo "$smn_2"
    echo "$smn_2" | grep -q "$kcv_2" || fail "the SMN row does not carry the terminal's KCV $kcv_2"
    wait_for "KMSMOKE smn: .*SMOKE0001" 1 "virt boot 2: the first row is still there" "$reboot"
    wait_for 'KMSMOKE update: running keymother [^ ]*[+]smoke1' 1 "virt boot 2: the updated package runs, the vault kept" "$reboot"
    wait_for 'KMSMOKE done' 1 "virt boot 2: done, powering off" "$reboot"
    wait_end
    stage_nothing_failed virt
    summary+=("$(printf '%-34s %6s s, two boots, provisioning, two injections, an update' "virt, in all" "$(elapsed)")")
    echo "virt: keys $index_1 and $index_2 injected over the emulated USB serial line, the vault survived the reboot"
}

run_raspi3b() {
    new_card raspi3b
    new_test_disk raspi3b check clock tamper
    local append
    append="$(cat "$work/cmdline.txt") $test_cmdline"
    check_cmdline "$append"
    # The Pi 3 has 1 GiB; its mini UART (the image's console, ttyS1) is qemu's second serial
    # port. -no-reboot: the Pi's power-off is a watchdog reset, which ends qemu instead.
    start_qemu raspi3b -M raspi3b -m 1G -no-reboot \
        -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -dtb "$work/bcm2837-rpi-3-b.dtb" \
        -append "$append" \
        -drive if=sd,file="$work/card-raspi3b.qcow2",format=qcow2 \
        -drive if=none,id=provision,file="$work/provision-raspi3b.vfat",format=raw,readonly=on \
        -device usb-storage,drive=provision \
        -serial null -serial file:"$work/console-raspi3b.log"

    stage_ready "raspi3b"
    stage_check "raspi3b" "" grown
    stage_clock "raspi3b"
    stage_tamper "raspi3b" ""
    wait_for 'KMSMOKE done' 1 "raspi3b: done, powering off"
    wait_end
    stage_nothing_failed raspi3b
    summary+=("$(printf '%-34s %6s s, one boot, the clock set under dual control, the GPIO tamper input' "raspi3b, in all" "$(elapsed)")")
}

for machine in $machines; do
    "run_$machine"
done
echo
echo "smoke test passed ($machines), in $(($(date +%s) - smoke_started)) s:"
printf '  %s\n' "${summary[@]}"
