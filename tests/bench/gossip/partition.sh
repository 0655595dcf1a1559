#!/usr/bin/env bash
# How long a change takes to reach a node cut off from the coordinator, through its keepers,
# with labd's default gossip interval (10 s): a real `lab serve` and four real agents, each in a
# network namespace on one bridge, nftables cutting the last one off. Five changes, each timed
# from the operator's command to the file the agent renders. Needs root and nftables.
# Usage: tests/bench/gossip/partition.sh [build/release] [changes]
set -euo pipefail
build=${1:-build/release}
changes=${2:-5}
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null; then
  echo "partition: skipped (needs root and nftables)"
  exit 0
fi
lab=$(realpath "$build/bootstrap/lab/lab")
labd=$(realpath "$build/agent/labd/labd")
work=$(mktemp -d /tmp/lab-partition.XXXXXX)
net=10.98.252
tag=$$
nss=()
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${nss[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.05; done
}
sw=lbsw$tag
ip netns add "$sw"; nss+=("$sw")
ip -n "$sw" link add br0 type bridge forward_delay 0
ip -n "$sw" link set br0 up
plug() {
  ip netns add "$1"; nss+=("$1")
  ip -n "$1" link set lo up
  ip link add "v$2" netns "$1" type veth peer name "b$2" netns "$sw"
  ip -n "$1" addr add "$net.$2/24" dev "v$2"
  ip -n "$1" link set "v$2" up
  ip -n "$sw" link set "b$2" master br0
  ip -n "$sw" link set "b$2" up
}
co=lbco$tag
plug "$co" 1
ip netns exec "$co" "$lab" serve --data-dir "$work/coordinator" --set "coordinator.listen=$net.1:8443" \
  >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for 30 grep -q 'msg=ready' "$work/serve.log"
blab() { LAB_DATA_DIR=$work/coordinator LAB_SERVER=https://$net.1:8443 ip netns exec "$co" "$lab" "$@"; }
for i in 11 12 13 14; do
  ns=lbag$i$tag
  plug "$ns" "$i"
  d=$work/agent$i
  mkdir -p "$d"
  cat >"$d/labd.toml" <<TOML
data_dir = "$d/data"
socket = "$d/run/labd.sock"
key_protection = "file"
[render]
labels_json = "$d/run/labels.json"
env_file = ""
secrets_dir = "$d/run/secrets"
facts_file = ""
[peer]
listen = "$net.$i:8444"
TOML
  js=$(blab token create --ttl 15m 2>/dev/null)
  ip netns exec "$ns" "$labd" --config "$d/labd.toml" join "$js" --hostname "agent$i" >/dev/null
  ip netns exec "$ns" "$labd" --config "$d/labd.toml" run >"$d/labd.log" 2>&1 &
  pids+=($!)
done
# labd status exits non-zero when the node is not current; the JSON is what is wanted here.
status() { ip netns exec "lbag$1$tag" "$labd" --config "$work/agent$1/labd.toml" status --output json || true; }
keeps3() { [ "$(status "$1" | jq .kept_nodes)" = 3 ]; }
unreachable() { status "$1" | jq -e '.sync == "unreachable"'; }
for i in 11 12 13 14; do wait_for 120 keeps3 "$i"; done
ip netns exec "lbag14$tag" nft -f - <<NFT
table inet cut {
  chain out { type filter hook output priority 0; ip daddr $net.1 drop; }
  chain in { type filter hook input priority 0; ip saddr $net.1 drop; }
}
NFT
t_cut=$SECONDS
wait_for 120 unreachable 14
noticed=$((SECONDS - t_cut))
times=()
for n in $(seq 1 "$changes"); do
  t0=$(date +%s%N)
  blab node label agent14 "change=$n" --overwrite >/dev/null
  wait_for 120 grep -q "\"change\":\"$n\"" "$work/agent14/run/labels.json"
  times+=($((($(date +%s%N) - t0) / 1000000)))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "== partition: a change reaching a node cut off from the coordinator through its keepers (4 agents, default peer.gossip_interval 10 s, load $(cut -d' ' -f1 /proc/loadavg))"
printf 'partition  %d changes: median %d ms, min %d ms, max %d ms (one gossip round is 8-12 s); the node noticed the cut after %d s (its long-poll timed out)\n' \
  "$changes" "$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
  "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)" "$noticed"
status 14 | jq -c '{source, source_peer, sync, revision}'
