#!/usr/bin/env bash
# A legitimate join's median latency while a stranger floods /v1/join and the iPXE script route
# (5,000 requests each), against its idle median, through a Release `lab serve`: the target is
# under 2×. Same test as the integration suite's, with the target as its bound; run it on a
# quiet machine (the load average is printed).
set -euo pipefail
build=${1:-build/release}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LAB_FLOOD_MAX_RATIO=${LAB_FLOOD_MAX_RATIO:-2} \
  "$build/tests/integration/bootstrap/coordinator/integration_coordinator" \
  --gtest_filter='UnauthenticatedFlood.*' --gtest_color=no | grep -E 'legitimate join|OK|FAILED'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
