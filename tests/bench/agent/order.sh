#!/usr/bin/env bash
# Writes agent/labd/labd.order: the functions a running labd executes (start, join already done,
# first sync of 10,000 labels, the local API, health checks of each kind, gossip rounds with a
# partner both ways, then idle), as mangled symbol names, one per line, sorted. The link of labd (lld
# --symbol-ordering-file) puts them first and together, so the code pages labd keeps resident
# are the ones it runs instead of most of .text: fault-around maps 64 KiB around each page a
# function is on, and with the linker's default order the functions a daemon runs are spread
# over nearly all of it.
#
# Only the layout depends on this file: a symbol it names that the link no longer has is
# ignored, and one it misses is placed after the others. Rerun it (Release build, valgrind)
# when labd's code has changed much; the idle RSS in agent_bench.sh shows when it is due.
# Usage: tests/bench/agent/order.sh [build/release]
set -euo pipefail
build=${1:-build/release}
root=$(cd "$(dirname "$0")/../../.." && pwd)
lab=$(realpath "$build/bootstrap/lab/lab")
labd=$(realpath "$build/agent/labd/labd")
work=$(mktemp -d /tmp/lab-agent-order.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

port=$(free_port)
export LAB_DATA_DIR=$work/coordinator LAB_SERVER=https://127.0.0.1:$port TSS2_LOG=all+none
: >"$work/lab.toml"
"$lab" serve --config "$work/lab.toml" --data-dir "$LAB_DATA_DIR" \
  --set "coordinator.listen=127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for 30 grep -q 'msg=ready' "$work/serve.log"

mkdir -p "$work/tpm" "$work/node"
swtpm socket --tpm2 --tpmstate dir="$work/tpm" --server type=unixio,path="$work/tpm/tpm.sock" \
  --ctrl type=unixio,path="$work/tpm/tpm.sock.ctrl" --flags not-need-init,startup-clear \
  >"$work/swtpm.log" 2>&1 &
pids+=($!)
wait_for 10 swtpm_ioctl --unix "$work/tpm/tpm.sock.ctrl" -g

config() {  # config DIR
  cat >"$1/labd.toml" <<TOML
data_dir = "$1/data"
socket = "$1/run/labd.sock"
tcti = "swtpm:path=$work/tpm/tpm.sock"
[render]
labels_json = "$1/run/labels.json"
env_file = "$1/run/labels.env"
secrets_dir = "$1/run/secrets"
facts_file = "$1/facts/lab.json"
TOML
  "$labd" --config "$1/labd.toml" join "$("$lab" token create --ttl 5m)" >/dev/null
}
# A partner for gossip rounds both ways: a second node, not profiled.
mkdir -p "$work/partner"
config "$work/partner"
"$labd" --config "$work/partner/labd.toml" --set "peer.listen=127.0.0.1:$(free_port)" \
  --set peer.gossip_interval=1s run >"$work/partner/labd.log" 2>&1 &
pids+=($!)
d=$work/node
config "$d"
node=$(jq -r .node_id "$d/data/node.json")
labels=$(for k in $(seq -w 1 10000); do printf 'bench.example.com/key-%s=value-%s ' "$k" "$k"; done)
# shellcheck disable=SC2086
"$lab" node label "$node" $labels order=yes >/dev/null
printf s3cret | "$lab" secret set order-secret --from-file - --entitlement order=yes >/dev/null
check() { "$lab" check set "$@" --selector order=yes --interval 5s >/dev/null; }
check cmd --command true
check shell --shell --command "head -c 10000 /dev/zero"
check hang --command "sleep 30" --timeout 1s
check tcp --tcp "127.0.0.1:$port"
check http --http "https://127.0.0.1:$port/metrics"

valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/labd.cg" \
  "$labd" --config "$d/labd.toml" --set "peer.listen=127.0.0.1:$(free_port)" \
  --set peer.gossip_interval=1s run \
  >"$d/labd.log" 2>&1 &
agent=$!
pids+=($agent)
wait_for 600 grep -q 'key-10000' "$d/run/labels.json"
wait_for 120 test -S "$d/run/labd.sock"
"$labd" --config "$d/labd.toml" labels >/dev/null
"$labd" --config "$d/labd.toml" status >/dev/null || true  # exit 1 while a check fails
curl -s --unix-socket "$d/run/labd.sock" http://labd/metrics >/dev/null
"$lab" node label "$node" order-round=2 >/dev/null  # a second bundle while running
sleep 40  # checks run a few times each, gossip rounds both ways, then idle
grep -q 'gossip' "$d/labd.log" || echo "order.sh: warning: no gossip round in the profile" >&2
kill -TERM "$agent"
wait "$agent" || true

# Every function named in the profile (callers and callees), mangled; names from the shared
# libraries are not labd's symbols and the linker skips them.
sed -nE 's/^c?fn=\([0-9]+\) (.+)$/\1/p' "$work/labd.cg" | grep -v -e '^0x' -e '^(' | LC_ALL=C sort -u \
  >"$root/agent/labd/labd.order"
echo "agent/labd/labd.order: $(wc -l <"$root/agent/labd/labd.order") functions"
