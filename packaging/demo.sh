#!/usr/bin/env bash
# make demo: a coordinator and three agents on loopback, each agent with its own software TPM.
# Shows joining, labels and secrets reaching the agents, a health check failing and recovering
# with the four pillars in `lab node list`, serving from the cache while the coordinator is
# down, and catching up when it returns. Everything lives in one temporary
# directory and every process it starts is stopped on exit (also on Ctrl-C or a failure).
set -euo pipefail

build=${1:-build/release}
lab=$(realpath "$build/bootstrap/lab/lab")
labd=$(realpath "$build/agent/labd/labd")
for p in "$lab" "$labd" swtpm swtpm_ioctl; do
  command -v "$p" >/dev/null || { echo "demo: $p not found (make demo builds it; packaging/install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/lab-demo.XXXXXX)
# Health checks run as an unprivileged user (nobody): the files they look at live apart.
flags=$(mktemp -d /tmp/lab-demo-flags.XXXXXX)
chmod 0755 "$flags"
pids=()
netns=
peer_ns=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "$netns" ] || ip netns del "$netns" 2>/dev/null || true
  for ns in "${peer_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work" "$flags"
  [ $rc -eq 0 ] && printf '\n== done: every process stopped, %s removed\n' "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
say() { printf '   %s\n' "$*"; }
# Shows a command as an operator would type it (lab, labd: not the build path, nor the demo's
# per-appliance wrappers plab and blab), then runs it.
# `run labd_of N ...` shows as labd on nodeN.
run() {
  local shown=() a prompt='$'
  if [ "$1" = labd_of ]; then
    prompt="node$2 \$"
    shown=(labd "${@:3}")
  else
    for a in "$@"; do
      case $a in
        "$lab" | plab | blab) a=lab ;;
        "$labd") a=labd ;;
      esac
      shown+=("$a")
    done
  fi
  printf '   %s %s\n' "$prompt" "${shown[*]}"
  "$@" 2>&1 | sed 's/^/     /'
}
# Polls a command until it succeeds, at most $1 seconds.
wait_for() {
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LAB_DATA_DIR=$work/coordinator LAB_SERVER=https://127.0.0.1:$port TSS2_LOG=all+none
: >"$work/lab.toml"

serve_pid=
declare -A agent_pid
start_coordinator() {
  : >"$work/serve.log"
  "$lab" serve --config "$work/lab.toml" --data-dir "$LAB_DATA_DIR" \
    --set "coordinator.listen=127.0.0.1:$port" >>"$work/serve.log" 2>&1 &
  serve_pid=$!
  pids+=("$serve_pid")
  wait_for 30 grep -q 'msg=ready' "$work/serve.log" || { cat "$work/serve.log"; exit 1; }
}

labd_of() { "$labd" --config "$work/node$1/labd.toml" "${@:2}"; }

step "Start the coordinator: lab serve on 127.0.0.1:$port, data in $LAB_DATA_DIR"
start_coordinator
say "CA and operator token created on first start: $(ls "$LAB_DATA_DIR" | tr '\n' ' ')"

step "Start three machines, each with its own swtpm (a TPM 2.0 simulator)"
for i in 1 2 3; do
  d=$work/node$i
  mkdir -p "$d/tpm"
  swtpm socket --tpm2 --tpmstate dir="$d/tpm" \
    --server type=unixio,path="$d/tpm/tpm.sock" --ctrl type=unixio,path="$d/tpm/tpm.sock.ctrl" \
    --flags not-need-init,startup-clear >"$d/swtpm.log" 2>&1 &
  pids+=($!)
  wait_for 10 swtpm_ioctl --unix "$d/tpm/tpm.sock.ctrl" -g
  cat >"$d/labd.toml" <<TOML
data_dir = "$d/data"
socket = "$d/run/labd.sock"
tcti = "swtpm:path=$d/tpm/tpm.sock"
[render]
labels_json = "$d/run/labels.json"
env_file = "$d/run/labels.env"
secrets_dir = "$d/run/secrets"
facts_file = "$d/facts/lab.json"
[sync]
wait = "10s"
backoff_initial = "1s"
backoff_cap = "4s"
TOML
  say "node$i: swtpm at $d/tpm/tpm.sock, config $d/labd.toml"
done

step "Create one-time join tokens and join each machine (labd join <join-string>)"
for i in 1 2 3; do
  js=$("$lab" token create --label fleet=demo --label rack=r$i --ttl 15m 2>/dev/null)
  say "node$i token: ${js:0:40}… (shown once; pins the coordinator CA)"
  # On stdin, as an operator should: a command line is readable by every local user.
  printf '%s\n' "$js" | run labd_of "$i" join - --hostname "node$i"
  "$labd" --config "$work/node$i/labd.toml" run >>"$work/node$i/labd.log" 2>&1 &
  agent_pid[$i]=$!
  pids+=($!)
done
for i in 1 2 3; do wait_for 20 test -S "$work/node$i/run/labd.sock"; done
run "$lab" node list

step "Define group 'demo' (fleet=demo), label its members, grant it a secret"
run "$lab" group set demo --selector fleet=demo
members=$("$lab" group members demo --output json | jq -r '.[].id')
for id in $members; do run "$lab" node label "$id" color=blue; done
printf 'correct-horse-battery-staple' | "$lab" secret set db-password --entitlement fleet=demo -f - >/dev/null
say "secret db-password set for fleet=demo (the operator never sees it again)"

step "Each agent picks them up (long-poll), renders files and serves them locally"
for i in 1 2 3; do
  wait_for 30 grep -q '"color":"blue"' "$work/node$i/run/labels.json"
  wait_for 30 test -f "$work/node$i/run/secrets/db-password"
  say "node$i: labels.json $(cat "$work/node$i/run/labels.json")"
  say "node$i: secret file $(stat -c '%a %U' "$work/node$i/run/secrets/db-password"), labd secret get db-password → $(labd_of "$i" secret get db-password)"
done
run labd_of 1 labels
say "on disk the secret exists only sealed: grep finds it in no file of node1's data dir:"
if grep -rqa correct-horse-battery-staple "$work/node1/data"; then say "FOUND (bug)"; exit 1; else say "not found"; fi

step "Health checks: a fleet-wide TCP check, and one on node2 that fails and recovers"
run "$lab" check set coordinator-port --selector fleet=demo --tcp "127.0.0.1:$port" --interval 5s
run "$lab" check set not-in-maintenance --selector rack=r2 \
  --command "test ! -e $flags/maintenance" --interval 2s --rise 1 --fall 2
run "$lab" check list
health_is() { [ "$("$lab" node list --where "health=$1" --output json | jq length)" = "$2" ]; }
wait_for 40 health_is passing 3
say "every node runs its checks (as nobody, killed at their timeout) and reports their states:"
run "$lab" node list
say "node2 goes into maintenance: its check fails twice in a row (--fall 2), then shows failing"
touch "$flags/maintenance"
wait_for 40 health_is failing 1
run "$lab" node list --where health=failing
run labd_of 2 status
rm "$flags/maintenance"
wait_for 40 health_is passing 3
say "maintenance over: passing again"
run "$lab" node list --where 'health=passing,sync=current'

step "Stop the coordinator"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
sleep 4
for i in 1 2 3; do
  say "node$i: $(labd_of "$i" labels | head -1)"
done
run labd_of 2 secret get db-password
echo
# Exit status 4: the cache is served, but nobody can confirm it is current.
run labd_of 3 status || say "(labd status exit $?: coordinator unreachable, serving from the cache)"

step "Restart one agent while the coordinator is still down: it serves from its cache"
kill "${agent_pid[3]}"; wait "${agent_pid[3]}" 2>/dev/null || true
"$labd" --config "$work/node3/labd.toml" run >>"$work/node3/labd.log" 2>&1 &
agent_pid[3]=$!
pids+=($!)
wait_for 20 test -S "$work/node3/run/labd.sock"
run labd_of 3 labels

step "Restart the coordinator and change a label: the agents catch up"
start_coordinator
for id in $members; do run "$lab" node label "$id" color=green --overwrite; done | grep -E '^   \$|labels:'
t0=$(date +%s%N)
for i in 1 2 3; do
  wait_for 30 grep -q '"color":"green"' "$work/node$i/run/labels.json"
  say "node$i has color=green $(( ($(date +%s%N) - t0) / 1000000 )) ms after the last change (backoff cap 4s): $(labd_of "$i" labels | head -1)"
done
run labd_of 1 labels

# ---------------------------------------------------------------------------------------------
# Peer sync: agents on a LAN of their own keep each other current with the coordinator cut off.
peer_skip=
if [ "$(id -u)" != 0 ]; then
  peer_skip="needs root (network namespaces, nftables)"
else
  for p in nft jq; do
    command -v "$p" >/dev/null || { peer_skip="$p is not installed (packaging/install-deps.sh)"; break; }
  done
fi
if [ -n "$peer_skip" ]; then
  step "Peer sync: skipped, $peer_skip"
else
  pnet=10.98.251
  sw=labpsw$$ pc=labpco$$
  step "Peer sync: a coordinator and four agents, each in a namespace of its own on bridge $pnet.0/24"
  ip netns add "$sw"; peer_ns+=("$sw")
  ip -n "$sw" link add br0 type bridge forward_delay 0
  ip -n "$sw" link set br0 up
  # plug NS IP: a veth from namespace NS (address IP) into the bridge.
  plug() {
    ip netns add "$1"; peer_ns+=("$1")
    ip -n "$1" link set lo up
    ip link add "v$2" netns "$1" type veth peer name "b$2" netns "$sw"
    ip -n "$1" addr add "$pnet.$2/24" dev "v$2"
    ip -n "$1" link set "v$2" up
    ip -n "$sw" link set "b$2" master br0
    ip -n "$sw" link set "b$2" up
  }
  plug "$pc" 1
  export PLAB_DATA_DIR=$work/peer-coordinator
  ip netns exec "$pc" "$lab" serve --data-dir "$PLAB_DATA_DIR" \
    --set "coordinator.listen=$pnet.1:8443" >"$work/peer-serve.log" 2>&1 &
  pserve_pid=$!
  pids+=("$pserve_pid")
  # plab: the lab CLI against this coordinator, from inside its namespace.
  plab() { LAB_DATA_DIR=$PLAB_DATA_DIR LAB_SERVER=https://$pnet.1:8443 ip netns exec "$pc" "$lab" "$@"; }
  wait_for 30 grep -q 'msg=ready' "$work/peer-serve.log" || { cat "$work/peer-serve.log"; exit 1; }
  declare -A pns
  for n in a b c d; do
    i=$(( $(printf '%d' "'$n") - 86 ))  # a → 11, b → 12, ...
    pns[$n]=labp$n$$
    plug "${pns[$n]}" "$i"
    d=$work/peer-$n
    mkdir -p "$d"
    cat >"$d/labd.toml" <<TOML
data_dir = "$d/data"
socket = "$d/run/labd.sock"
key_protection = "file"
[render]
labels_json = "$d/run/labels.json"
env_file = "$d/run/labels.env"
secrets_dir = "$d/run/secrets"
facts_file = "$d/facts/lab.json"
[sync]
wait = "10s"
backoff_cap = "4s"
[peer]
listen = "$pnet.$i:8444"
gossip_interval = "2s"
TOML
    js=$(plab token create --label fleet=peers --ttl 15m 2>/dev/null)
    ip netns exec "${pns[$n]}" "$labd" --config "$d/labd.toml" join "$js" --hostname "node-$n" >/dev/null
    ip netns exec "${pns[$n]}" "$labd" --config "$d/labd.toml" run >>"$d/labd.log" 2>&1 &
    pids+=($!)
  done
  # labd status exits non-zero when the node is not current; the JSON is what is wanted here.
  pstatus() { ip netns exec "${pns[$1]}" "$labd" --config "$work/peer-$1/labd.toml" status --output json || true; }
  pkeeps3() { [ "$(pstatus "$1" | jq .kept_nodes)" = 3 ]; }
  punreachable() { pstatus "$1" | jq -e '.sync == "unreachable"'; }
  pfleet_past() { pstatus "$1" | jq -e --argjson r "$2" '.fleet_revision > $r'; }
  say "keys in files (key_protection=file) to keep this part short; the loopback part above used swtpm"
  for n in a b c d; do wait_for 60 pkeeps3 "$n"; done
  say "every agent listens for peers (mTLS, fleet CA) and keeps the newest envelopes of 3 others:"
  for n in a b c d; do say "node-$n: $(pstatus "$n" | jq -c '{peer_listen, kept_nodes, revision}')"; done

  step "Cut node-d off from the coordinator (nftables in its namespace), peers still reachable"
  ip netns exec "${pns[d]}" nft -f - <<NFT
table inet labcut {
  chain out { type filter hook output priority 0; ip daddr $pnet.1 drop; }
  chain in { type filter hook input priority 0; ip saddr $pnet.1 drop; }
}
NFT
  wait_for 90 punreachable d
  say "node-d: $(pstatus d | jq -c '{sync, coordinator_reachable, revision}')"
  run plab node label node-d color=purple --overwrite
  printf 'only-for-node-d' | plab secret set d-secret --entitlement color=purple -f - >/dev/null
  say "secret d-secret set for color=purple (only node-d)"
  t0=$(date +%s%N)
  wait_for 30 grep -q '"color":"purple"' "$work/peer-d/run/labels.json"
  wait_for 30 test -f "$work/peer-d/run/secrets/d-secret"
  say "node-d applied both $(( ($(date +%s%N) - t0) / 1000000 )) ms after the change, through a keeper (gossip interval 2 s):"
  say "node-d: $(pstatus d | jq -c '{source, source_peer, sync, revision}')"
  say "node-d: secret file → $(cat "$work/peer-d/run/secrets/d-secret")"
  say "its keepers hold the envelope sealed to node-d's key; the plaintext is in none of their files:"
  for n in a b c; do
    if grep -rqa only-for-node-d "$work/peer-$n"; then say "node-$n: FOUND (bug)"; exit 1; else say "node-$n: not found"; fi
  done
  run plab node list

  step "Revoke node-c, cut everyone but node-a off, then stop the coordinator"
  for n in b c; do
    ip netns exec "${pns[$n]}" nft -f - <<NFT
table inet labcut {
  chain out { type filter hook output priority 0; ip daddr $pnet.1 drop; }
  chain in { type filter hook input priority 0; ip saddr $pnet.1 drop; }
}
NFT
  done
  held=$(pstatus a | jq .fleet_revision)
  run plab node revoke node-c
  wait_for 30 pfleet_past a "$held"
  kill "$pserve_pid"; wait "$pserve_pid" 2>/dev/null || true
  say "coordinator stopped; node-a alone heard of the revocation: $(pstatus a | jq -c '{fleet_revision}')"
  t0=$SECONDS
  for n in b d; do
    wait_for 60 pfleet_past "$n" "$held"
  done
  say "gossip carried it to node-b and node-d within $((SECONDS - t0)) s:"
  for n in a b d; do say "node-$n: $(pstatus "$n" | jq -c '{fleet_revision, sync}')"; done
  wait_for 30 grep -q 'this certificate or node is revoked' "$work/peer-a/labd.log" "$work/peer-b/labd.log" "$work/peer-d/labd.log"
  say "node-c's own gossip is now refused by its peers:"
  grep -h 'this certificate or node is revoked' "$work"/peer-{a,b,d}/labd.log | head -3 | sed 's/^/     /'
fi

# ---------------------------------------------------------------------------------------------
# Network boot: a VM with no disk PXE-boots the agent OS from an appliance on a bridge.
vm_skip=
if [ "$(id -u)" != 0 ]; then
  vm_skip="needs root (a network namespace, a tap device, DHCP on port 67)"
else
  for p in qemu-system-x86_64 dnsmasq zstd busybox strip; do
    command -v "$p" >/dev/null || { vm_skip="$p is not installed (packaging/install-deps.sh)"; break; }
  done
  [ -n "$vm_skip" ] || [ -e /usr/lib/ipxe/undionly.kpxe ] || vm_skip="package ipxe is missing"
  [ -n "$vm_skip" ] || [ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || vm_skip="package ipxe-qemu is missing"
  [ -n "$vm_skip" ] || ls /var/cache/lab/kernel/linux-image-*.deb >/dev/null 2>&1 ||
    vm_skip="no kernel package in /var/cache/lab/kernel (packaging/install-deps.sh)"
fi
if [ -n "$vm_skip" ]; then
  step "Network boot of a VM: skipped, $vm_skip"
  exit 0
fi

step "Network boot: build the agent OS (Debian's kernel + an initramfs with labd)"
mkdir -p "$work/boot/http" "$work/boot/tftp"
strip -o "$work/boot/labd" "$labd"
run "$lab" image agent-os --out "$work/boot/http/agent" --labd "$work/boot/labd" \
  --kernel-dir /var/cache/lab/kernel --no-sign --no-deploy
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi "$work/boot/tftp/"

netns=labdemo$$
net=10.98.250
mac=52:54:00:de:00:01
step "A second appliance on a LAN of its own: namespace $netns, bridge br0 $net.1/24, tap0 for the VM"
ip netns add "$netns"
ip -n "$netns" link set lo up
ip -n "$netns" link add br0 type bridge forward_delay 0
ip -n "$netns" addr add "$net.1/24" dev br0
ip -n "$netns" -6 addr add fd98:250::1/64 dev br0 nodad
ip -n "$netns" link set br0 up
ip netns exec "$netns" ip tuntap add dev tap0 mode tap
ip -n "$netns" link set tap0 master br0
ip -n "$netns" link set tap0 up
# iPXE waits ~15 s for IPv6 autoconfiguration where no router speaks: dnsmasq sends router
# advertisements (nothing else) so it stops waiting at once.
ip netns exec "$netns" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=br0 \
  --bind-interfaces --enable-ra --dhcp-range=::,constructor:br0,ra-only \
  --dhcp-leasefile="$work/boot/dnsmasq.leases" --pid-file="$work/boot/dnsmasq.pid" --user=root \
  >"$work/boot/dnsmasq.log" 2>&1 &
pids+=($!)
cat >"$work/boot/lab.toml" <<TOML
[coordinator]
listen = "$net.1:8443"
[dhcp]
enabled = true
mode = "full"
interface = "br0"
conflict_probe = false
[[dhcp.subnets]]
subnet = "$net.0/24"
range_start = "$net.100"
range_end = "$net.150"
router = "$net.1"
[tftp]
enabled = true
listen = "$net.1:69"
root = "$work/boot/tftp"
[httpboot]
enabled = true
listen = "$net.1:8080"
root = "$work/boot/http"
TOML
ip netns exec "$netns" "$lab" serve --config "$work/boot/lab.toml" --data-dir "$work/boot/data" \
  >"$work/boot/serve.log" 2>&1 &
pids+=($!)
wait_for 30 grep -q 'msg=ready' "$work/boot/serve.log" || { cat "$work/boot/serve.log"; exit 1; }
say "lab serve: DHCP (full mode), TFTP, HTTP boot and the coordinator on $net.1 (config $work/boot/lab.toml)"
# `blab`: the lab CLI pointed at this appliance (inside its namespace).
blab() {
  ip netns exec "$netns" env LAB_DATA_DIR="$work/boot/data" LAB_SERVER="https://$net.1:8443" "$lab" "$@"
}

step "Power on a VM with no disk: QEMU, SeaBIOS + iPXE, 512 MB, 2 CPUs, NIC $mac"
accel=tcg
say "(TCG: this machine's KVM cannot run iPXE; expect 15–60 s depending on load)"
console=$work/boot/console.log
ip netns exec "$netns" qemu-system-x86_64 -accel "$accel" -m 512 -smp 2 -nographic -monitor none \
  -no-reboot -serial "file:$console" -boot n \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$mac" \
  >"$work/boot/qemu.log" 2>&1 &
pids+=($!)
t0=$SECONDS
shown=0
# Prints the agent OS's and labd's console lines as they appear, until one matches $1.
follow_console() {
  local until=$1 end=$((SECONDS + $2))
  local done=
  while [ $SECONDS -lt $end ]; do
    grep -a -q "$until" "$console" 2>/dev/null && done=1
    mapfile -t lines < <(grep -a -E 'lab-agent-os:|labd boot:' "$console" 2>/dev/null | tr -d '\r')
    while [ "$shown" -lt "${#lines[@]}" ]; do
      say "[$((SECONDS - t0)) s] console: ${lines[$shown]}"
      shown=$((shown + 1))
    done
    [ -z "$done" ] || return 0
    grep -a -q -E 'labd boot: failed|lab-agent-os: stopped' "$console" 2>/dev/null && break
    sleep 0.5
  done
  say "the VM did not get there; last console lines:"
  tail -n 20 "$console" | sed 's/^/     /'
  return 1
}
follow_console 'labd boot: waiting for the operator' 300

step "The machine is known now, as discovered: accept it"
run blab node list
name=$(blab node list --output json | jq -r --arg mac "$mac" '.[] | select(.macs | index($mac)) | .name')
run blab node accept "$name"
follow_console 'labd boot: ready' 60
run blab node list

step "The flight recorder: every step of that boot, from the first DHCP packet to labd's join"
run blab machine timeline "$mac"
