#!/usr/bin/env bash
# image/smoke.sh: boots the image image/build.sh made under qemu-system-aarch64 and injects
# keys through it, as a bench would:
#
#   image/smoke.sh [--image FILE] [--timeout SECONDS]
#
# - the image boots on qemu's virt machine (cortex-a57) with its own kernel and initramfs,
#   taken from its firmware partition; its disk is a copy-on-write overlay, so the built
#   image is left as it was;
# - an emulated USB serial adapter (qemu's usb-serial, an FTDI ttyUSB device for the guest)
#   is wired to a pseudo-terminal here: the bench's serial line;
# - a test-only provisioning disk and a systemd unit passed on the kernel command line as a
#   credential (neither is in the image) do what the site's people do at the console:
#   image/smoke/provision.sh;
# - boot 1: keymotherd READY, provisioning, the reference terminal here injects a key over
#   the serial line and checks its KCV, the guest shows the SMN row, then reboots;
# - boot 2: keymotherd READY, the vault survived: the first key stays used and the next
#   terminal gets the next index; the guest powers off.
# Each stage is printed with its time since qemu started.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/.." && pwd)
image="$here/out/keymother-arm64.img"
timeout=900
while [ $# -gt 0 ]; do
    case "$1" in
    --image) image=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "smoke.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -f "$image" ] || { echo "smoke.sh: no image at $image; run image/build.sh first" >&2; exit 1; }
for tool in qemu-system-aarch64 qemu-img mcopy mkfs.vfat sfdisk; do
    command -v "$tool" >/dev/null || {
        echo "smoke.sh: $tool is missing; image/build.sh installs it" >&2
        exit 1
    }
done

work="$(dirname "$image")/smoke"
rm -rf "$work"
mkdir -p "$work"
console="$work/console.log"
qemu_pid=
cleanup() {
    [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
    rm -f "$work/provision.vfat"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# The reference terminal, built for this machine.
target_dir=$(cd "$workspace" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
(cd "$workspace" && cargo build --release --locked -q -p keymother-terminal)
terminal="$target_dir/release/keymother-terminal"

# The kernel and initramfs from the image's firmware partition (partition 1).
firmware_offset=$(($(sfdisk --dump "$image" | sed -n 's/.*1 : start= *\([0-9]*\),.*/\1/p') * 512))
listing=$(mdir -b -i "$image@@$firmware_offset" ::)
kernel=$(echo "$listing" | grep -o 'vmlinuz-[^ ]*$' | sort -V | tail -n1)
initrd=$(echo "$listing" | grep -o 'initrd.img-[^ ]*$' | sort -V | tail -n1)
[ -n "$kernel" ] && [ -n "$initrd" ] || { echo "smoke.sh: no kernel or initrd in the firmware partition" >&2; exit 1; }
mcopy -n -i "$image@@$firmware_offset" "::$kernel" "$work/vmlinuz"
mcopy -n -i "$image@@$firmware_offset" "::$initrd" "$work/initrd.img"
qemu-img create -q -f qcow2 -F raw -b "$(realpath "$image")" "$work/appliance.qcow2"

# The provisioning disk: the site's CAs and an operator credential (the pki test fixtures,
# made with openssl), the bench's settings, and fresh key components for this run.
provision="$work/provision"
mkdir -p "$provision/pki"
fixtures="$workspace/pki/tests/fixtures"
cp "$fixtures/ca-device.pem" "$provision/pki/device-ca.pem"
cp "$fixtures/ca-kdh.pem" "$provision/pki/kdh-ca.pem"
cp "$fixtures/ca-operator.pem" "$provision/pki/operator-ca.pem"
cp "$fixtures/operator.der" "$provision/operator.pem"
cp "$fixtures/test-only-operator.key" "$provision/operator.key"
cp "$here/smoke/provision.sh" "$here/smoke/50-bench.toml" "$provision/"
random_hex() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F; }
xor_hex() { # the XOR of two hex strings of equal length, 4 bytes at a time
    local a=$1 b=$2 result='' i
    for ((i = 0; i < ${#a}; i += 8)); do
        result+=$(printf '%08X' $((0x${a:i:8} ^ 0x${b:i:8})))
    done
    echo "$result"
}
kek_1=$(random_hex) kek_2=$(random_hex) ttk_1=$(random_hex) ttk_2=$(random_hex)
printf '%s\n%s\n' "$kek_1" "$kek_2" >"$provision/kek-components"
printf '%s\n%s\n' "$ttk_1" "$ttk_2" >"$provision/ttk-components"
xor_hex "$kek_1" "$kek_2" >"$provision/kek"
ttk=$(xor_hex "$ttk_1" "$ttk_2")
mkfs.vfat -n KMSMOKE -C "$work/provision.vfat" 8192
mcopy -s -i "$work/provision.vfat" "$provision"/* ::
# The test keys' components stay only on the disk image, which goes when the test ends.
rm -rf "$provision"

# The unit that runs provision.sh, as a credential on the kernel command line: systemd's
# debug generator turns systemd.extra-unit.* credentials into units (systemd 256 and later).
unit=$(base64 -w0 <"$here/smoke/keymother-smoke.service")
append="root=LABEL=KM-ROOT ro rootwait console=ttyAMA0 net.ifnames=0 systemd.journald.forward_to_console=1"
append+=" systemd.set_credential_binary=systemd.extra-unit.keymother-smoke.service:$unit"
append+=" systemd.wants=keymother-smoke.service"

# ---------------------------------------------------------------------------------------
milliseconds() { echo $(($(date +%s%N) / 1000000)); }
started=$(milliseconds)
elapsed() { # seconds since qemu started, with one decimal
    local tenths=$((($(milliseconds) - started) / 100))
    echo "$((tenths / 10)).$((tenths % 10))"
}
say() { printf '[%6s s] %s\n' "$(elapsed)" "$*"; }
fail() {
    say "FAILED: $*"
    echo "--- the guest's console, last 60 lines ($console):"
    tail -n 60 "$console" | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g'
    exit 1
}
qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 2 -m 1024 \
    -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -append "$append" \
    -drive if=none,id=sd,file="$work/appliance.qcow2",format=qcow2 -device virtio-blk-pci,drive=sd \
    -drive if=none,id=provision,file="$work/provision.vfat",format=raw,readonly=on \
    -device virtio-blk-pci,drive=provision \
    -device qemu-xhci -chardev pty,id=bench -device usb-serial,chardev=bench \
    -nic none -display none -monitor none -serial file:"$console" \
    >"$work/qemu.log" 2>&1 &
qemu_pid=$!
say "qemu started (pid $qemu_pid)"

# Waits until the console has its COUNT-th line matching PATTERN, counting only after the
# first line matching AFTER when that is given (boot 2 begins after "rebooting"); prints it.
wait_for() {
    local pattern=$1 count=$2 what=$3 after=${4:-} line
    while :; do
        line=$(tr -d '\r' <"$console" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' |
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
bench_pty=
for _ in $(seq 50); do
    bench_pty=$(sed -n 's/.*char device redirected to \(\/dev\/pts\/[0-9]*\) (label bench).*/\1/p' "$work/qemu.log")
    [ -n "$bench_pty" ] && break
    sleep 0.1
done
[ -n "$bench_pty" ] || fail "qemu did not say which pseudo-terminal is the bench's serial line"
say "bench serial line: $bench_pty (the guest's /dev/ttyUSB0)"

# systemd's status line when keymotherd sent READY=1 (Type=notify), printed while booting.
started_keymotherd='\[  OK  \] Started keymotherd\.service'

# Injects one key from a terminal with SERIAL; prints "index kcv".
inject() {
    local serial=$1 output
    output=$(echo "$ttk" | "$terminal" --port "$bench_pty" --serial "$serial" \
        --timeout-ms 3000 2>&1) || fail "terminal $serial: $output"
    say "terminal $serial: $output"
    echo "$output" | sed -n 's/^injected key \([0-9]*\), SMN [^,]*, KCV \([0-9A-F]*\),.*/\1 \2/p' >"$work/injected"
    [ -s "$work/injected" ] || fail "terminal $serial printed no injected key"
}

wait_for "$started_keymotherd" 1 "boot 1: keymotherd READY"
ready_1=$(elapsed)
wait_for 'KMSMOKE root read-only' 1 "boot 1: the root is read-only"
wait_for 'KMSMOKE ready for a terminal' 1 "boot 1: provisioned, operator logged in"
inject SMOKE0001
read -r index_1 kcv_1 <"$work/injected"
smn_1=$(wait_for "KMSMOKE smn: .*SMOKE0001" 1 "boot 1: the guest's SMN registry has the row")
echo "$smn_1"
echo "$smn_1" | grep -q "$kcv_1" || fail "the SMN row does not carry the terminal's KCV $kcv_1: $smn_1"

reboot='KMSMOKE rebooting'
wait_for "$started_keymotherd" 1 "boot 2: keymotherd READY" "$reboot"
ready_2_at=$(elapsed)
wait_for 'KMSMOKE provisioned before' 1 "boot 2: the vault kept its keys and secrets" "$reboot"
wait_for 'KMSMOKE ready for a terminal' 1 "boot 2: operator logged in" "$reboot"
inject SMOKE0002
read -r index_2 kcv_2 <"$work/injected"
[ $((10#$index_2)) -eq $((10#$index_1 + 1)) ] ||
    fail "boot 2's terminal got key $index_2, not the next after $index_1"
smn_2=$(wait_for "KMSMOKE smn: .*SMOKE0002" 1 "boot 2: the guest's SMN registry has the new row" "$reboot")
echo "$smn_2"
echo "$smn_2" | grep -q "$kcv_2" || fail "the SMN row does not carry the terminal's KCV $kcv_2"
wait_for "KMSMOKE smn: .*SMOKE0001" 1 "boot 2: the first row is still there" "$reboot"
wait_for 'KMSMOKE done' 1 "boot 2: done, powering off"
wait "$qemu_pid" || true
qemu_pid=
say "qemu ended"
# The guest's own uptime when systemd saw READY=1, from the journal forwarded to the console.
uptimes=$(tr -d '\r' <"$console" | sed -n 's/^\[ *\([0-9.]*\)\] systemd\[1\]: Started keymotherd\.service.*/\1/p' | xargs)
echo "boot to READY: ${ready_1} s from qemu's start (first boot, with the vault's creation); the guest's uptime each time keymotherd became READY (boot 1, its restart with the site's settings, boot 2): ${uptimes} s; second boot READY ${ready_2_at} s after qemu's start"
echo "smoke test passed: keys $index_1 and $index_2 injected over the emulated USB serial line, the vault survived the reboot"
