#!/usr/bin/env bash
# labd figures from a Release build: stripped binary size, idle RSS and CPU with 10,000 labels
# cached, and join latency (TPM mode on swtpm, against a real `lab serve` on loopback).
# Usage: tests/bench/agent/agent_bench.sh [build/release] [joins]
set -euo pipefail
build=${1:-build/release}
joins=${2:-10}
lab=$(realpath "$build/bootstrap/lab/lab")
labd=$(realpath "$build/agent/labd/labd")
work=$(mktemp -d /tmp/lab-agent-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # And any agent started in a subshell (measure runs in one): each names this run's directory.
  pkill -f -- "--config $work/" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}
ms_now() { echo $(($(date +%s%N) / 1000000)); }

echo "== labd (agent) figures, build $build, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"

strip -o "$work/labd.stripped" "$labd"
size=$(stat -c %s "$work/labd.stripped")
printf 'binary   stripped labd: %d bytes = %.2f MiB (target < 5 MiB); shared libs: %s\n' \
  "$size" "$(echo "$size / 1048576" | bc -l)" \
  "$(ldd "$labd" | awk '{print $1}' | grep -E 'ssl|crypto|curl|sqlite|tss2|boost|fmt|systemd' | tr '\n' ' ')"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LAB_DATA_DIR=$work/coordinator LAB_SERVER=https://127.0.0.1:$port TSS2_LOG=all+none
: >"$work/lab.toml"
taskset -c 0 "$lab" serve --config "$work/lab.toml" --data-dir "$LAB_DATA_DIR" \
  --set "coordinator.listen=127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for 30 grep -q 'msg=ready' "$work/serve.log"

mkdir -p "$work/tpm"
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
}

# Join latency: each join on a fresh data dir (new data key sealed by the TPM, new keys, CSR,
# pin check, token exchange). The token is minted before the clock starts.
times=()
for n in $(seq 1 "$joins"); do
  d=$work/join$n
  mkdir -p "$d"
  config "$d"
  js=$("$lab" token create --ttl 5m 2>/dev/null)
  t0=$(ms_now)
  taskset -c 1 "$labd" --config "$d/labd.toml" join "$js" >/dev/null
  times+=($(($(ms_now) - t0)))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf 'join     %d joins (TPM on swtpm): median %d ms, min %d ms, max %d ms\n' "$joins" "$median" \
  "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)"

# Idle RSS and CPU with 10,000 labels cached.
d=$work/join1
node=$(jq -r .node_id "$d/data/node.json")
labels=$(for k in $(seq -w 1 10000); do printf 'bench.example.com/key-%s=value-%s ' "$k" "$k"; done)
# shellcheck disable=SC2086
"$lab" node label "$node" $labels >/dev/null
taskset -c 1 "$labd" --config "$d/labd.toml" run >"$d/labd.log" 2>&1 &
agent=$!
pids+=($agent)
wait_for 60 grep -q 'key-10000' "$d/run/labels.json"
sleep 5
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$agent/status")
hwm_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$agent/status")
anon_kib=$(awk '/^RssAnon/ {print $2}' "/proc/$agent/status")
file_kib=$(awk '/^RssFile/ {print $2}' "/proc/$agent/status")
pss_kib=$(awk '/^Pss:/ {print $2}' "/proc/$agent/smaps_rollup")
private_kib=$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$agent/smaps_rollup")
# Resident KiB by mapping: the heap and anonymous memory, labd's own pages, each shared library.
by_mapping=$(awk '
  /^[0-9a-f]+-[0-9a-f]+ / { n = $6; sub(/.*\//, "", n); if (n == "") n = "[anon]" }
  /^Rss:/ { rss[n] += $2 }
  /^Private_(Clean|Dirty):/ { priv[n] += $2 }
  END { for (n in rss) if (rss[n] > 0) printf "%d %d %s\n", rss[n], priv[n], n }' \
  "/proc/$agent/smaps" | sort -rn)
ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
c0=$(ticks)
sleep 10
c1=$(ticks)
count=$(jq '.labels | length' <("$labd" --config "$d/labd.toml" labels --output json))
printf 'rss      idle labd with %d labels cached: VmRSS %d KiB = %.2f MiB (peak %.2f MiB; target < 12 MiB)\n' \
  "$count" "$rss_kib" "$(echo "$rss_kib / 1024" | bc -l)" "$(echo "$hwm_kib / 1024" | bc -l)"
printf '         of which heap/stack (RssAnon) %d KiB, mapped files and shared libraries (RssFile) %d KiB\n' "$anon_kib" "$file_kib"
printf '         PSS %d KiB, private (not shared with any other process) %d KiB\n' "$pss_kib" "$private_kib"
echo "         by mapping, KiB resident (private): $(echo "$by_mapping" | head -12 |
  awk '{printf "%s%s %d (%d)", sep, $3, $1, $2; sep = ", "}')"
printf 'cpu      idle labd over 10 s: %d clock ticks (%s Hz) of CPU\n' "$((c1 - c0))" "$(getconf CLK_TCK)"
# For scale: the smallest TLS client on this machine (openssl s_client, C, no cache, no TPM, no
# HTTP) idle on a connection to the same coordinator. OpenSSL and libc pages alone are most of it.
sleep 20 | taskset -c 1 openssl s_client -quiet -connect "127.0.0.1:$port" >/dev/null 2>&1 &
ref=$!
pids+=($ref)
sleep 2
ref_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$ref/status" 2>/dev/null || echo 0)
printf 'ref      idle openssl s_client on the same server: VmRSS %d KiB = %.2f MiB\n' "$ref_kib" \
  "$(echo "$ref_kib / 1024" | bc -l)"
echo "(no peer agent is installed on this machine to run side by side; peers document 30-300 MB RSS)"

# The peer side: RSS the peer listener adds and CPU per gossip round. The same node (10,000
# labels cached) runs once with peer.listen=off and once listening on loopback with one-second
# gossip rounds against a second agent that also listens; both keep each other's envelope.
kill "$agent"; wait "$agent" 2>/dev/null || true
pport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p1=$(pport); p2=$(pport)
d2=$work/join2
taskset -c 1 "$labd" --config "$d2/labd.toml" --set "peer.listen=127.0.0.1:$p2" \
  --set peer.gossip_interval=1s run >"$d2/labd.log" 2>&1 &
pids+=($!)
cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
mappings() {  # mappings PID: "name rss_kib" for each mapped file, [heap], [anon], [stack]
  awk '/^[0-9a-f]+-[0-9a-f]+ / { n = $6; sub(/.*\//, "", n); if (n == "") n = "[anon]" }
    /^Rss:/ { rss[n] += $2 } END { for (n in rss) print n, rss[n] }' "/proc/$1/smaps" | sort
}
measure() {  # measure NAME SETS...: prints "rss_kib anon_kib file_kib cpu_ns_per_20s"
  local name=$1; shift
  taskset -c 1 "$labd" --config "$d/labd.toml" "$@" run >"$d/labd-$name.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_for 30 test -S "$d/run/labd.sock"
  if [ "$name" = on ]; then
    # Peer address changes reach other bundles at most every 30 s (coordinator peer_debounce).
    # The two listening nodes are the whole ring, so this node keeps every other node's
    # envelope (the ones that never run have keepers too).
    wait_for 120 sh -c "\"$labd\" --config \"$d/labd.toml\" status --output json | jq -e '.kept_nodes == $((joins - 1))'" ||
      echo "the node never kept its partner's envelope: $(tail -5 "$d/labd-$name.log")" >&2
  fi
  # The local API's code is paged in by a status query; query both ways so neither run counts
  # it against the other.
  "$labd" --config "$d/labd.toml" status --output json >/dev/null || true
  sleep 5
  local rss anon file c0 c1
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  mappings "$pid" >"$work/mappings-$name"
  anon=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
  file=$(awk '/^RssFile/ {print $2}' "/proc/$pid/status")
  c0=$(cpu_ns "$pid"); sleep 20; c1=$(cpu_ns "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rss $anon $file $((c1 - c0))"
}
# A first run with the listener lets the ring settle: its address reaches the coordinator and
# the node's bundle (10,000 labels) changes once to name its keeper. Measured after that, both
# ways, so neither run pays for applying a large bundle.
read -r _ _ _ _ < <(measure on --set "peer.listen=127.0.0.1:$p1" --set peer.gossip_interval=1s)
read -r off_rss off_anon off_file off_cpu < <(measure off --set peer.listen=off)
read -r on_rss on_anon on_file on_cpu < <(measure on --set "peer.listen=127.0.0.1:$p1" --set peer.gossip_interval=1s)
rounds=20
printf 'peer     listener on (1 s gossip rounds with one partner): VmRSS %d KiB, off: %d KiB; added %d KiB (target < 1 MiB)\n' \
  "$on_rss" "$off_rss" "$((on_rss - off_rss))"
printf '         of which heap (RssAnon) %+d KiB, code and libraries (RssFile) %+d KiB\n' \
  "$((on_anon - off_anon))" "$((on_file - off_file))"
echo "         by mapping, KiB added: $(join -a1 -a2 -e0 -o 0,1.2,2.2 "$work/mappings-on" "$work/mappings-off" |
  awk '$2 != $3 {printf "%d %s\n", $2 - $3, $1}' | sort -rn | head -8 |
  awk '{printf "%s%s %+d", sep, $2, $1; sep = ", "}')"
printf '         CPU over 20 s: %.1f ms on, %.1f ms off; %.2f ms per gossip round (about %d rounds, each an mTLS exchange)\n' \
  "$(echo "$on_cpu / 1000000" | bc -l)" "$(echo "$off_cpu / 1000000" | bc -l)" \
  "$(echo "($on_cpu - $off_cpu) / $rounds / 1000000" | bc -l)" "$rounds"

# Health checks: the same node (10,000 labels cached) with 20 checks at 10 s intervals against
# none. The checks include the hostile kinds (one that hangs until its timeout, one that prints
# 10 MB, one that forks children that would outlive it): labd's own RSS and CPU must not move
# much; the checks' processes are reported apart (their CPU is the commands', not labd's).
checks_cmd() { "$lab" check set "$@" --selector bench=checks --interval 10s >/dev/null; }
"$lab" node label "$node" bench=checks >/dev/null
for i in $(seq 1 12); do checks_cmd "true-$i" --command true; done
for i in 1 2 3 4 5; do checks_cmd "tcp-$i" --tcp "127.0.0.1:$port"; done
checks_cmd hang --command "sleep 300" --timeout 2s
checks_cmd megabytes --shell --command "head -c 10000000 /dev/zero"
checks_cmd forks --shell --command "sleep 60 & sleep 60 & true"
measure_checks() {  # measure_checks NAME: "rss_kib cpu_ticks children_ticks" over 60 s
  taskset -c 1 "$labd" --config "$d/labd.toml" --set peer.listen=off run >"$d/labd-checks-$1.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_for 30 test -S "$d/run/labd.sock"
  sleep 15
  # utime + stime of every thread of labd (schedstat counts the main thread only; the checks
  # run on worker threads), and of the check processes it has reaped.
  local c0 k0 c1 k1 rss
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); k0=$(awk '{print $16 + $17}' "/proc/$pid/stat")
  sleep 60
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); k1=$(awk '{print $16 + $17}' "/proc/$pid/stat")
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rss $((c1 - c0)) $((k1 - k0))"
}
read -r chk_rss chk_cpu chk_children < <(measure_checks on)
running=$("$lab" node show "$node" --output json | jq -r '[.checks[] | .status] | group_by(.) | map("\(.[0]) \(length)") | join(", ")')
"$lab" node unlabel "$node" bench >/dev/null
sleep 3
read -r nochk_rss nochk_cpu _ < <(measure_checks off)
printf 'checks   20 checks at 10 s (12 true, 5 TCP, one hanging to its 2 s timeout, one printing 10 MB, one forking): VmRSS %d KiB, without: %d KiB; added %d KiB\n' \
  "$chk_rss" "$nochk_rss" "$((chk_rss - nochk_rss))"
tick_ms=$((1000 / $(getconf CLK_TCK)))
printf '         labd CPU over 60 s (all threads): %d ms with, %d ms without; the check processes themselves: %d ms; states: %s\n' \
  "$((chk_cpu * tick_ms))" "$((nochk_cpu * tick_ms))" "$((chk_children * tick_ms))" "$running"
