#!/usr/bin/env bash
# make demo: a coordinator and three agents on loopback, each agent with its own software TPM.
# Shows joining, labels and secrets reaching the agents, serving from the cache while the
# coordinator is down, and catching up when it returns. Everything lives in one temporary
# directory and every process it starts is stopped on exit (also on Ctrl-C or a failure).
set -euo pipefail

build=${1:-build/release}
lab=$(realpath "$build/bootstrap/lab/lab")
labd=$(realpath "$build/agent/labd/labd")
for p in "$lab" "$labd" swtpm swtpm_ioctl; do
  command -v "$p" >/dev/null || { echo "demo: $p not found (make release; packaging/install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/lab-demo.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  [ $rc -eq 0 ] && printf '\n== done: every process stopped, %s removed\n' "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
say() { printf '   %s\n' "$*"; }
run() { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; }
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
  run labd_of "$i" join "$js" --hostname "node$i"
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

step "Stop the coordinator"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
sleep 4
for i in 1 2 3; do
  say "node$i: $(labd_of "$i" labels | head -1)"
done
run labd_of 2 secret get db-password
echo
run labd_of 3 status

step "Restart one agent while the coordinator is still down: it serves from its cache"
kill "${agent_pid[3]}"; wait "${agent_pid[3]}" 2>/dev/null || true
"$labd" --config "$work/node3/labd.toml" run >>"$work/node3/labd.log" 2>&1 &
agent_pid[3]=$!
pids+=($!)
wait_for 20 test -S "$work/node3/run/labd.sock"
run labd_of 3 labels

step "Restart the coordinator and change a label: the agents catch up"
start_coordinator
for id in $members; do run "$lab" node label "$id" color=green; done | grep -E '^   \$|labels:'
t0=$(date +%s%N)
for i in 1 2 3; do
  wait_for 30 grep -q '"color":"green"' "$work/node$i/run/labels.json"
  say "node$i has color=green $(( ($(date +%s%N) - t0) / 1000000 )) ms after the last change (backoff cap 4s): $(labd_of "$i" labels | head -1)"
done
run labd_of 1 labels
