#!/usr/bin/env bash
# make demo: shows the programs a fresh build produced.
set -euo pipefail
build=${1:-build/release}
echo "== lab and labd, built in $build"
"$build/bootstrap/lab/lab" --version
"$build/agent/labd/labd" --version
