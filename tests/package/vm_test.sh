#!/usr/bin/env bash
# The packages on a booted Debian 12 system, systemd as PID 1: a minimal image made here
# (mmdebstrap: systemd, kernel, openssh-server, the packages' dependencies; no apt sources, so
# nothing in it can reach a mirror), booted in QEMU with a TPM 2.0 (swtpm) and user-mode
# networking that reaches only this machine's loopback. Proved:
# - `apt install ./lab_*.deb` + `systemctl enable --now lab-serve`: active (running) after its
#   READY=1, as the lab user with only CAP_NET_BIND_SERVICE, CAP_NET_RAW and CAP_NET_ADMIN;
#   the operator CLI on the machine works against it.
# - `lab bootstrap ssh --package labd_*.deb` (lab serve on this machine's loopback): the real apt
#   installs the package from a directory only root can enter (an apt hook records how the
#   package and its directory look, and whether another user can list or read them); a failing
#   apt and a failing join are rolled back (the package purged, the token revoked); then the
#   host joins, labd.service (the package's unit, not the installer's) is active (running) with
#   its sealed key in the TPM through the unit's DeviceAllow.
# - The watchdog: a SIGSTOPped labd is killed by systemd after WatchdogSec and restarted.
#
# Usage: tests/package/vm_test.sh [PACKAGES_DIR]   (default build/packages; needs root)
#        LAB_TEST_KEEP=1 keeps the work directory (image, logs) for a look after a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packages=$(realpath "${1:-$here/../../build/packages}")
lab_deb=$(ls "$packages"/lab_*_amd64.deb 2>/dev/null | head -1)
labd_deb=$(ls "$packages"/labd_*_amd64.deb 2>/dev/null | head -1)
if [ -z "$lab_deb" ] || [ -z "$labd_deb" ]; then
  echo "FAIL: no lab_*.deb and labd_*.deb in $packages: run 'make package' first (make test does)"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "FAIL: needs root (mmdebstrap, chroot)"
  exit 1
fi
for tool in mmdebstrap mke2fs qemu-system-x86_64 swtpm ssh scp ssh-keygen python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (packaging/install-deps.sh)"; exit 1; }
done
version=$(dpkg-deb -f "$labd_deb" Version)
work=$(mktemp -d /var/tmp/lab-vm-test.XXXXXX)
pids=()
failures=0
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$failures" != 0 ]; then
    echo "--- serial console (last 40 lines)"; tail -40 "$work/serial.log" 2>/dev/null || true
    echo "--- lab serve (last 20 lines)"; tail -20 "$work/serve.log" 2>/dev/null || true
    echo "--- qemu"; cat "$work/qemu.log" 2>/dev/null || true
  fi
  if [ -n "${LAB_TEST_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Polls a command until it succeeds, at most $1 seconds.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 1
  done
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Every Depends and Recommends of both packages, first alternative, without versions: installed
# into the image so that apt inside it finds them without a mirror.
dependencies() {
  for deb in "$lab_deb" "$labd_deb"; do
    for field in Depends Recommends; do dpkg-deb -f "$deb" "$field"; done
  done | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' | grep -v '^$' | sort -u | paste -sd,
}

echo "== image: Debian 12 with systemd, linux, openssh-server and $(dependencies)"
root=$work/root
mmdebstrap --quiet --variant=minbase \
  --include="systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools,openssh-server,procps,$(dependencies)" \
  bookworm "$root" http://deb.debian.org/debian >"$work/mmdebstrap.log" 2>&1 || {
  tail -20 "$work/mmdebstrap.log"
  echo "FAIL: mmdebstrap could not make the image"
  exit 1
}
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
echo vm1 >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vm1\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 defaults 0 1\n' >"$root/etc/fstab"
printf '[Match]\nName=en*\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/20-wired.network"
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1
: >"$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$work/id.pub" "$root/root/.ssh/authorized_keys"
in_root useradd --create-home --shell /bin/sh mallory
# apt hands the hook the path of every package it installs; it records how each package and its
# directory look to root and to another user, and fails while /etc/lab-test-fail-install exists.
cat >"$root/usr/local/sbin/lab-test-record-debs" <<'SH'
#!/bin/sh
while read -r deb; do
  dir=$(dirname "$deb")
  {
    echo "dir $(stat -c '%U %a' "$dir")"
    echo "package $(stat -c '%U %a' "$deb")"
    runuser -u mallory -- ls "$dir" >/dev/null 2>&1 && echo "mallory lists it"
    runuser -u mallory -- cat "$deb" >/dev/null 2>&1 && echo "mallory reads the package"
  } >>/var/log/lab-test-debs.log
done
[ ! -e /etc/lab-test-fail-install ]
SH
chmod 0755 "$root/usr/local/sbin/lab-test-record-debs"
echo 'DPkg::Pre-Install-Pkgs { "/usr/local/sbin/lab-test-record-debs"; };' \
  >"$root/etc/apt/apt.conf.d/99lab-test"
kernel=$(ls "$root"/boot/vmlinuz-* | head -1)
initrd=$(ls "$root"/boot/initrd.img-* | head -1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
mke2fs -q -t ext4 -L root -d "$root" "$work/root.img" 3G
rm -rf "$root"
ok "image $(du -h --apparent-size "$work/root.img" | cut -f1) with $(basename "$kernel")"

echo "== lab serve on this machine's loopback (the packaged binaries, unpacked)"
dpkg-deb -x "$lab_deb" "$work/host"
dpkg-deb -x "$labd_deb" "$work/host"
lab=$work/host/usr/bin/lab
port=$(free_port)
export LAB_DATA_DIR=$work/coordinator LAB_SERVER=https://127.0.0.1:$port
# The VM reaches this machine's 127.0.0.1 as 10.0.2.2 (QEMU user networking).
cat >"$work/lab.toml" <<TOML
[coordinator]
listen = "127.0.0.1:$port"
advertised_url = "https://10.0.2.2:$port"
server_names = ["localhost", "127.0.0.1", "10.0.2.2"]
TOML
"$lab" serve --config "$work/lab.toml" --data-dir "$LAB_DATA_DIR" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for 30 grep -q 'msg=ready' "$work/serve.log" || { fail "lab serve did not start"; exit 1; }

echo "== boot it: QEMU, TPM 2.0 from swtpm, ssh forwarded from 127.0.0.1"
mkdir -p "$work/tpm"
start_swtpm() {
  rm -f "$work/tpm/sock"
  swtpm socket --tpm2 --tpmstate dir="$work/tpm" --ctrl type=unixio,path="$work/tpm/sock" \
    >>"$work/swtpm.log" 2>&1 &
  swtpm_pid=$!
  pids+=($swtpm_pid)
  wait_for 10 test -S "$work/tpm/sock" || { fail "swtpm did not start"; exit 1; }
}
start_swtpm
ssh_port=$(free_port)
boot() {  # boot ACCEL CPU: starts QEMU in the background, sets qemu_pid
  : >"$work/serial.log"
  qemu-system-x86_64 -machine q35,accel="$1" -cpu "$2" -m 1536 -smp 2 \
    -display none -monitor none -serial file:"$work/serial.log" -no-reboot \
    -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 systemd.show_status=1" \
    -drive file="$work/root.img",if=virtio,format=raw,cache=unsafe \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$ssh_port-:22 -device virtio-net-pci,netdev=n0 \
    -device virtio-rng-pci \
    -chardev socket,id=tpm,path="$work/tpm/sock" -tpmdev emulator,id=tpm0,chardev=tpm \
    -device tpm-tis,tpmdev=tpm0 >"$work/qemu.log" 2>&1 &
  qemu_pid=$!
  pids+=($qemu_pid)
}
# KVM here may be nested and software-backed, and kernels can hang under it before printing a
# line (as tests/e2e finds): KVM counts as working when the kernel has printed its banner within
# 20 s; otherwise the VM starts again under TCG (LAB_E2E_ACCEL forces either).
accel=${LAB_E2E_ACCEL:-}
if [ -z "$accel" ]; then
  accel=tcg
  if [ -w /dev/kvm ]; then
    boot kvm host
    if wait_for 20 grep -q 'Linux version' "$work/serial.log"; then
      accel=kvm
    else
      kill "$qemu_pid" "$swtpm_pid" 2>/dev/null || true
      wait "$qemu_pid" "$swtpm_pid" 2>/dev/null || true
      start_swtpm
    fi
  fi
fi
if [ "$accel" = tcg ]; then boot tcg max; elif [ -z "${qemu_pid:-}" ]; then boot kvm host; fi
vm() {
  ssh -q -i "$work/id" -p "$ssh_port" -o BatchMode=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile="$work/known_hosts.ssh" -o StrictHostKeyChecking=accept-new \
    root@127.0.0.1 "$@"
}
boot_start=$SECONDS
wait_for 300 vm true || { fail "no ssh into the VM after 300 s ($accel)"; exit 1; }
state=$(vm systemctl is-system-running --wait || true)
ok "booted ($accel) in $((SECONDS - boot_start)) s, systemd says '$state'"
[ "$state" = running ] || vm systemctl --failed --no-legend || true
active_running() {
  echo "echo \$(systemctl show -p ActiveState --value $1) \$(systemctl show -p SubState --value $1)"
}
key_protection() { vm labd status --output json | json "d.get('key_protection')"; }
# Repeats a check inside the VM until it prints what is expected, at most $1 seconds.
vm_expect() {  # vm_expect SECONDS EXPECTED COMMAND...
  local end=$((SECONDS + $1)) want=$2 got; shift 2
  while :; do
    got=$(vm "$@" 2>/dev/null || true)
    [ "$got" = "$want" ] && return 0
    [ $SECONDS -lt $end ] || { echo "  ($* printed '$got', expected '$want')"; return 1; }
    sleep 1
  done
}

echo "== lab: apt install, enable --now"
scp -q -i "$work/id" -P "$ssh_port" -o BatchMode=yes -o UserKnownHostsFile="$work/known_hosts.ssh" \
  "$lab_deb" root@127.0.0.1:/root/
if vm "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/$(basename "$lab_deb")" \
  >"$work/apt-lab.log" 2>&1 && vm systemctl enable --now lab-serve.service >/dev/null 2>&1; then
  ok "apt installed lab $version, lab-serve enabled and started"
else
  tail -20 "$work/apt-lab.log"
  fail "could not install and start lab"
fi
if vm_expect 60 "active running" "$(active_running lab-serve)"; then
  ok "lab-serve.service is active (running)"
else
  fail "lab-serve.service is not active (running)"
  vm journalctl -u lab-serve --no-pager | tail -20 || true
fi
pid=$(vm systemctl show -p MainPID --value lab-serve)
user=$(vm ps -o user= -p "$pid" | tr -d ' ')
caps=$(vm grep ^CapEff "/proc/$pid/status" | cut -f2)
# CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
if [ "$user" = lab ] && [ "$caps" = 0000000000003400 ]; then
  ok "lab serve runs as lab with CapEff $caps (net_bind_service, net_admin, net_raw)"
else
  fail "lab serve runs as '$user' with CapEff '$caps'"
fi
if vm_expect 30 0 'lab token list >/dev/null 2>&1; echo $?'; then
  ok "lab token list on the VM answers from its lab serve"
else
  fail "the operator CLI on the VM cannot reach lab-serve"
fi

bootstrap() {
  "$lab" bootstrap ssh "root@127.0.0.1:$ssh_port" --identity "$work/id" \
    --known-hosts "$work/known_hosts" --accept-new --package "$labd_deb" \
    --agent "$work/host/usr/bin/labd" --json "$@"
}
result_field() { json "d[0].get('$2', '')" <"$1"; }
token_states() { "$lab" token list --output json | json "' '.join(sorted(t['state'] for t in d))"; }
package_state() { vm "dpkg-query -W -f='\${db:Status-Status}' labd 2>/dev/null || echo unknown"; }

echo "== lab bootstrap ssh --package: apt fails, the host is rolled back"
vm touch /etc/lab-test-fail-install
if bootstrap >"$work/b1.json" 2>"$work/b1.err"; then fail "bootstrap succeeded with apt failing"; fi
step=$(result_field "$work/b1.json" step || true)
[ "$step" = upload ] && ok "failed at step upload: $(result_field "$work/b1.json" message)" \
  || fail "step '$step', expected upload: $(cat "$work/b1.json" "$work/b1.err")"
[ "$(vm 'ls -d /tmp/lab-install.* 2>/dev/null | wc -l')" = 0 ] && ok "upload directory removed" \
  || fail "an upload directory is left in the VM's /tmp"
[ "$(package_state)" != installed ] && ok "labd is not installed" || fail "labd is installed"
vm rm /etc/lab-test-fail-install

echo "== lab bootstrap ssh --package: the join fails, the package is purged"
if bootstrap --agent-set bogus=1 >"$work/b2.json" 2>"$work/b2.err"; then
  fail "bootstrap succeeded with a setting labd refuses"
fi
step=$(result_field "$work/b2.json" step || true)
[ "$step" = join ] && ok "failed at step join: $(result_field "$work/b2.json" message)" \
  || fail "step '$step', expected join: $(cat "$work/b2.json" "$work/b2.err")"
st=$(package_state)
[ "$st" = not-installed ] || [ "$st" = unknown ] && ok "labd purged ($st)" || fail "labd is '$st' after the rollback"
vm test -e /etc/lab/labd.toml && fail "/etc/lab/labd.toml is left" || ok "its configuration is gone"
states=$(token_states)
[ "$states" = revoked ] && ok "its token revoked" || fail "tokens are '$states'"

echo "== lab bootstrap ssh --package: joins"
vm ': >/var/log/lab-test-debs.log'
if bootstrap >"$work/b3.json" 2>"$work/b3.err"; then
  node=$(result_field "$work/b3.json" node_id)
  ok "joined as $node"
else
  fail "bootstrap failed: $(cat "$work/b3.json" "$work/b3.err")"
  vm journalctl -u labd --no-pager | tail -30 || true
  exit 1
fi
recorded=$(vm cat /var/log/lab-test-debs.log)
[ "$recorded" = $'dir root 700\npackage root 600' ] && ok "apt installed it from a 0700 root directory, package 0600, unseen by mallory" \
  || fail "the package and its directory looked like this to apt's hook: '$recorded'"
[ "$(vm 'ls -d /tmp/lab-install.* 2>/dev/null | wc -l')" = 0 ] && ok "upload directory removed" \
  || fail "an upload directory is left in the VM's /tmp"
[ "$(vm "dpkg-query -W -f='\${Version}' labd")" = "$version" ] && ok "labd $version installed by dpkg" \
  || fail "the labd package is not installed"
vm test -e /usr/local/bin/labd && fail "the installer also wrote /usr/local/bin/labd" || ok "no /usr/local/bin/labd"
unit=$(vm systemctl show -p FragmentPath --value labd)
[ "$unit" = /lib/systemd/system/labd.service ] && ok "labd.service is the package's unit" \
  || fail "labd.service comes from '$unit'"
[ "$(vm systemctl is-enabled labd)" = enabled ] && ok "labd.service enabled" || fail "labd.service is not enabled"
if vm_expect 30 "active running" "$(active_running labd)"; then
  ok "labd.service is active (running)"
else
  fail "labd.service is not active (running)"
  vm journalctl -u labd --no-pager | tail -20 || true
fi
protection=$(key_protection)
[ "$protection" = tpm ] && ok "labd's key is sealed in the TPM, unsealed by the sandboxed service" \
  || fail "key_protection is '$protection'"
listed=$("$lab" node list --output json | json "' '.join(n['id'] for n in d)")
[[ " $listed " == *" $node "* ]] && ok "lab node list has $node" || fail "lab node list: '$listed'"

echo "== the watchdog restarts a hung labd"
pid=$(vm systemctl show -p MainPID --value labd)
vm kill -STOP "$pid"
stopped=$SECONDS
if vm_expect 90 "1 active" \
  'echo $(systemctl show -p NRestarts --value labd) $(systemctl show -p ActiveState --value labd)'; then
  new=$(vm systemctl show -p MainPID --value labd)
  ok "restarted $((SECONDS - stopped)) s after SIGSTOP (WatchdogSec=30s): pid $pid -> $new"
else
  fail "labd was not restarted after SIGSTOP"
fi
vm journalctl -u labd --no-pager | grep -q 'Watchdog timeout' && ok "the journal says 'Watchdog timeout'" \
  || fail "no watchdog timeout in labd's journal"
answers_with_tpm() { [ "$(key_protection 2>/dev/null)" = tpm ]; }
if wait_for 30 answers_with_tpm; then
  ok "the restarted labd answers, key in the TPM"
else
  fail "the restarted labd does not answer"
fi

vm systemctl poweroff >/dev/null 2>&1 || true
wait_for 60 sh -c "! kill -0 $qemu_pid" || true
echo "== $failures failure(s)"
[ "$failures" = 0 ]
