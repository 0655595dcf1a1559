#!/usr/bin/env bash
# HTTP boot file serving: lab's HTTP boot server against nginx, side by side in one run.
#
#   tests/bench/http/bench.sh [--build DIR] [--runs N] [--duration S] [--quick]
#
# Both servers serve the same 64 MiB and 2 KiB files from one directory; wrk (-t2 -c50) loads
# each in turn. The servers run on core 0, wrk on core 1. As root the servers run in a network
# namespace and wrk in another, joined by a veth pair (as tests/bench peer baselines were
# measured); otherwise both use loopback. nginx runs in the foreground (daemon off) with a
# temporary config: one worker, sendfile on, tcp_nopush on, access_log off. lab runs
# `lab serve` with only the recorder and httpboot components (every fetch is recorded).
# Prints the median of N runs per server and file and the ratio lab/nginx.
# Exit code 77 when wrk or nginx is missing (ctest counts it as skipped).
set -euo pipefail

build=build/release
runs=3
duration=10
quick=0
while (($#)); do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --quick) quick=1; runs=1; duration=1; shift ;;
    *) build=$1; shift ;;
  esac
done

lab=$build/bootstrap/lab/lab
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for p in wrk taskset curl; do
  command -v "$p" >/dev/null || { echo "bench http: $p is not installed, skipping"; exit 77; }
done
[[ -x $nginx ]] || { echo "bench http: nginx is not installed, skipping"; exit 77; }
[[ -x $lab ]] || { echo "bench http: $lab not built"; exit 1; }

work=$(mktemp -d /tmp/lab-bench-http.XXXXXX)
pids=()
ns_srv="" ns_cli=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -n $ns_srv ]] && ip netns del "$ns_srv" 2>/dev/null
  [[ -n $ns_cli ]] && ip netns del "$ns_cli" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
[[ -n ${BENCH_KEEP:-} ]] && trap "cat \"\$work/lab.log\"; cleanup" EXIT

mkdir -p "$work/root" "$work/data" "$work/nginx"
head -c $((64 << 20)) /dev/urandom >"$work/root/large.bin"
head -c 2048 /dev/urandom >"$work/root/small.bin"
# nginx's worker drops to its own user: it must be able to read the files.
chmod 755 "$work" "$work/root"
chmod 644 "$work/root/"*.bin

srv_exec=() cli_exec=()
addr=127.0.0.1
if [[ $(id -u) == 0 && $quick == 0 ]]; then
  ns_srv=labhb-s-$$ ns_cli=labhb-c-$$
  ip netns add "$ns_srv"
  ip netns add "$ns_cli"
  ip link add "hbs$$" type veth peer name "hbc$$"
  ip link set "hbs$$" netns "$ns_srv"
  ip link set "hbc$$" netns "$ns_cli"
  ip -n "$ns_srv" addr add 10.231.0.1/24 dev "hbs$$"
  ip -n "$ns_cli" addr add 10.231.0.2/24 dev "hbc$$"
  for ns in "$ns_srv" "$ns_cli"; do
    ip -n "$ns" link set lo up
  done
  ip -n "$ns_srv" link set "hbs$$" up
  ip -n "$ns_cli" link set "hbc$$" up
  srv_exec=(ip netns exec "$ns_srv")
  cli_exec=(ip netns exec "$ns_cli")
  addr=10.231.0.1
  where="netns pair over veth"
else
  where="loopback"
fi
lab_port=18480
nginx_port=18481

# Only file serving is measured: the coordinator (where the build has one) stays off.
coordinator_off=""
if "$lab" serve --data-dir "$work/data" --show-config 2>/dev/null | grep -q '^coordinator.enabled'; then
  coordinator_off=$'[coordinator]\nenabled = false'
fi
cat >"$work/lab.toml" <<EOF
$coordinator_off
[log]
level = "${BENCH_LOG_LEVEL:-warn}"
[httpboot]
enabled = true
listen = "$addr:$lab_port"
root = "$work/root"
EOF
taskset -c 0 "${srv_exec[@]}" "$lab" serve --data-dir "$work/data" --config "$work/lab.toml" \
  >"$work/lab.log" 2>&1 &
pids+=($!)

cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  default_type application/octet-stream;
  server {
    listen $addr:$nginx_port;
    location /boot/ { alias $work/root/; }
  }
}
EOF
taskset -c 0 "${srv_exec[@]}" "$nginx" -c "$work/nginx/nginx.conf" -p "$work/nginx" \
  >"$work/nginx.log" 2>&1 &
pids+=($!)

for port in $lab_port $nginx_port; do
  for _ in $(seq 300); do
    "${cli_exec[@]}" curl -sf -o /dev/null "http://$addr:$port/boot/small.bin" && break
    sleep 0.1
  done
  "${cli_exec[@]}" curl -sf -o /dev/null "http://$addr:$port/boot/small.bin" || {
    echo "bench http: server on port $port did not come up"
    cat "$work/lab.log" "$work/nginx.log" "$work/nginx/error.log" 2>/dev/null
    exit 1
  }
done
# Both serve the same bytes.
for f in large.bin small.bin; do
  a=$("${cli_exec[@]}" curl -sf "http://$addr:$lab_port/boot/$f" | sha256sum)
  b=$("${cli_exec[@]}" curl -sf "http://$addr:$nginx_port/boot/$f" | sha256sum)
  [[ $a == "$b" ]] || { echo "bench http: $f differs between lab and nginx"; exit 1; }
done

# wrk's "Transfer/sec: 1.31GB" → bytes per second.
to_bytes() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    m = 1; if (u == "KB") m = 1024; else if (u == "MB") m = 1048576; else if (u == "GB") m = 1073741824;
    printf "%.0f", n * m }'
}

# One wrk run; prints "req/s bytes/s p99".
measure() {
  local url=$1 out
  out=$(taskset -c 1 "${cli_exec[@]}" wrk -t2 -c50 -d"${duration}s" --latency "$url")
  local rps tps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  tps=$(awk '/^Transfer\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench http: non-2xx answers from $url" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$rps $(to_bytes "$tps") $p99"
}

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

declare -A rps bps p99s
for f in small.bin large.bin; do
  for server in lab nginx; do
    port=$lab_port
    [[ $server == nginx ]] && port=$nginx_port
    "${cli_exec[@]}" taskset -c 1 wrk -t2 -c50 -d1s "http://$addr:$port/boot/$f" >/dev/null  # warm-up
  done
  for ((i = 0; i < runs; i++)); do
    for server in lab nginx; do  # alternate so drift on the shared machine hits both alike
      port=$lab_port
      [[ $server == nginx ]] && port=$nginx_port
      read -r r b p <<<"$(measure "http://$addr:$port/boot/$f")"
      rps[$server.$f]+="$r "
      bps[$server.$f]+="$b "
      p99s[$server.$f]+="$p "
    done
  done
done

echo "HTTP boot file serving, $where, servers on core 0, wrk -t2 -c50 -d${duration}s on core 1,"
echo "median of $runs runs"
printf '%-10s %-6s %14s %12s %10s\n' file server "req/s" "MB/s" "p99"
declare -A med
for f in small.bin large.bin; do
  for server in lab nginx; do
    r=$(tr ' ' '\n' <<<"${rps[$server.$f]}" | grep . | median)
    b=$(tr ' ' '\n' <<<"${bps[$server.$f]}" | grep . | median)
    p=$(tr ' ' '\n' <<<"${p99s[$server.$f]}" | grep . | sort -V | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    med[$server.$f.rps]=$r
    med[$server.$f.bps]=$b
    printf '%-10s %-6s %14.1f %12.1f %10s\n' "$f" "$server" "$r" "$(awk -v b="$b" 'BEGIN {print b / 1048576}')" "$p"
  done
done
small_ratio=$(awk -v a="${med[lab.small.bin.rps]}" -v b="${med[nginx.small.bin.rps]}" 'BEGIN {printf "%.2f", a / b}')
large_ratio=$(awk -v a="${med[lab.large.bin.bps]}" -v b="${med[nginx.large.bin.bps]}" 'BEGIN {printf "%.2f", a / b}')
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r >= t) ? "meets" : "BELOW"}'; }
echo "ratio lab/nginx: 2 KiB file ${small_ratio}x req/s (target 0.70: $(verdict "$small_ratio" 0.7)), 64 MiB file ${large_ratio}x MB/s (target 0.90: $(verdict "$large_ratio" 0.9))"
