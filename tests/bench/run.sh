#!/usr/bin/env bash
# make bench: runs every benchmark of a Release build and prints the figures.
set -euo pipefail
build=${1:-build/release}
"$build/tests/bench/bench_shared" --benchmark_counters_tabular=true
"$build/tests/bench/coordinator/bench_coordinator"
tests/bench/coordinator/flood.sh "$build"
"$(dirname "$0")/tftp/run.sh" "$build"
tests/bench/agent/agent_bench.sh "$build"
tests/bench/gossip/run.sh "$build"
tests/bench/dhcp/run.sh "$build"
tests/bench/http/bench.sh --build "$build"
