#!/usr/bin/env bash
# Gossip convergence at 10,000 nodes (Release build): all up, then 10 % of the nodes down.
set -euo pipefail
build=${1:-build/release}
echo "== gossip simulation, build $build, load $(cut -d' ' -f1 /proc/loadavg)"
"$build/tests/bench/gossip/bench_gossip_sim" --nodes 10000 --seeds 5 --interval 10
"$build/tests/bench/gossip/bench_gossip_sim" --nodes 10000 --seeds 5 --interval 10 --down 10
# The bytes grow with the envelope: with 100 revoked serials (certificates leave the list when
# they expire, 7 days by default).
"$build/tests/bench/gossip/bench_gossip_sim" --nodes 10000 --seeds 3 --interval 10 --revoked 100 || true
"$(dirname "$0")/partition.sh" "$build"
