#!/usr/bin/env bash
# TFTP benchmark: lab serve (tftp only), tftpd-hpa (in.tftpd -L) and dnsmasq (--enable-tftp,
# port=0) in one run, each in turn inside a server namespace pinned to core 0, clients in a
# second namespace pinned to core 1, joined by a veth pair. Cases: one 32 MiB transfer and 50
# concurrent 1 MiB transfers. Clients: bench_tftp_client (blksize 1468, windowsize 64 where the
# server grants it), atftp (blksize 1468, windowsize 8) and curl (blksize 1468) for the single
# transfer. Every file received is compared with the original. Medians of RUNS runs (default 3).
#
#   sudo tests/bench/tftp/run.sh [build/release]
set -euo pipefail
build=$(realpath "${1:-build/release}")
runs=${RUNS:-3}
lab="$build/bootstrap/lab/lab"
client="$build/tests/bench/tftp/bench_tftp_client"

for p in ip taskset in.tftpd dnsmasq atftp curl "$lab" "$client"; do
  command -v "$p" >/dev/null || { echo "tftp bench: $p not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "tftp bench: needs root (network namespaces)" >&2; exit 1; }

work=$(mktemp -d /tmp/lab-tftp-bench.XXXXXX)
chmod 755 "$work"
srv=ltftps$$
cli=ltftpc$$
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$srv"
ip netns add "$cli"
ip link add "vs$$" type veth peer name "vc$$"
ip link set "vs$$" netns "$srv"
ip link set "vc$$" netns "$cli"
ip -n "$srv" addr add 10.78.0.1/24 dev "vs$$"
ip -n "$cli" addr add 10.78.0.2/24 dev "vc$$"
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "vs$$" up
ip -n "$cli" link set "vc$$" up

root="$work/root"
mkdir -p "$root"
head -c $((32 << 20)) /dev/urandom >"$root/big.bin"
head -c $((1 << 20)) /dev/urandom >"$root/one.bin"
chmod -R a+rX "$root"

in_cli() { taskset -c 1 ip netns exec "$cli" "$@"; }

start_server() {
  case $1 in
    lab)
      # All 50 concurrent transfers come from the one client address.
      taskset -c 0 ip netns exec "$srv" "$lab" serve --data-dir "$work/labdata" \
        --set coordinator.enabled=false --set tftp.enabled=true --set tftp.listen=10.78.0.1:69 --set "tftp.root=$root" \
        --set tftp.max_transfers_per_client=50 \
        >"$work/lab.log" 2>&1 &
      ;;
    tftpd-hpa)
      taskset -c 0 ip netns exec "$srv" in.tftpd -L -s "$root" -a 10.78.0.1:69 \
        >"$work/tftpd.log" 2>&1 &
      ;;
    dnsmasq)
      taskset -c 0 ip netns exec "$srv" dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
        --pid-file= --enable-tftp --tftp-root="$root" --tftp-max=200 \
        --listen-address=10.78.0.1 --bind-interfaces >"$work/dnsmasq.log" 2>&1 &
      ;;
  esac
  server_pid=$!
  for _ in $(seq 1 100); do
    if ip netns exec "$srv" ss -Huln | grep -q '10.78.0.1:69 '; then
      return 0
    fi
    sleep 0.1
  done
  echo "tftp bench: $1 did not start" >&2
  cat "$work"/*.log >&2
  exit 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# MB/s of one bench_tftp_client run.
own_client() {
  local out
  out=$(in_cli "$client" --server 10.78.0.1 "$@") || { echo "tftp bench: client failed: $out" >&2; exit 1; }
  sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' <<<"$out"
}

# MB/s of one external client fetching big.bin, checked against the original.
external() {
  local start end out="$work/got.bin"
  rm -f "$out"
  start=$(date +%s.%N)
  case $1 in
    atftp) in_cli atftp --option "blksize 1468" --option "windowsize 8" -g -r big.bin -l "$out" 10.78.0.1 >/dev/null 2>&1 ;;
    curl) in_cli curl -sS --tftp-blksize 1468 -o "$out" tftp://10.78.0.1/big.bin ;;
  esac
  end=$(date +%s.%N)
  cmp -s "$out" "$root/big.bin" || { echo "tftp bench: $1 got a different file" >&2; exit 1; }
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", 33554432 / (e - s) / 1e6 }'
}

declare -A result
read -r -a servers <<<"${SERVERS:-lab tftpd-hpa dnsmasq}"
for s in "${servers[@]}"; do
  start_server "$s"
  result[$s,single]=$(for _ in $(seq "$runs"); do own_client --file big.bin --expect "$root/big.bin" --blksize 1468 --windowsize 64; done | median)
  result[$s,single_w8]=$(for _ in $(seq "$runs"); do own_client --file big.bin --expect "$root/big.bin" --blksize 1468 --windowsize 8; done | median)
  result[$s,conc]=$(for _ in $(seq "$runs"); do own_client --file one.bin --expect "$root/one.bin" --blksize 1468 --windowsize 64 --count 50; done | median)
  result[$s,atftp]=$(for _ in $(seq "$runs"); do external atftp; done | median)
  result[$s,curl]=$(for _ in $(seq "$runs"); do external curl; done | median)
  stop_server
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f", a / b }'; }
echo "TFTP, MB/s (median of $runs), server on core 0, client on core 1, veth between two namespaces"
printf '| case | lab | tftpd-hpa | dnsmasq | lab/tftpd-hpa | lab/dnsmasq |\n| --- | --- | --- | --- | --- | --- |\n'
for c in single single_w8 conc atftp curl; do
  case $c in
    single) label="32 MiB, bench client, blksize 1468, windowsize 64" ;;
    single_w8) label="32 MiB, bench client, blksize 1468, windowsize 8" ;;
    conc) label="50 × 1 MiB at once, bench client, blksize 1468, windowsize 64" ;;
    atftp) label="32 MiB, atftp, blksize 1468, windowsize 8" ;;
    curl) label="32 MiB, curl, blksize 1468" ;;
  esac
  l=${result[lab,$c]:--} h=${result[tftpd-hpa,$c]:--} d=${result[dnsmasq,$c]:--}
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$l" "$h" "$d" "$(ratio "$l" "$h")" "$(ratio "$l" "$d")"
done
