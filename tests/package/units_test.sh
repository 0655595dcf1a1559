#!/usr/bin/env bash
# The packaged systemd units: `systemd-analyze security --offline` rates labd.service at most
# 2.5 and lab-serve.service at most 4.0 (prints both scores). systemd-analyze verify needs the
# programs where ExecStart names them: package_test.sh runs it inside the test system.
set -euo pipefail
debian=$(cd "$(dirname "$0")/../../packaging/debian" && pwd)
fail=0
check() {  # check UNIT_FILE MAX
  local out score
  out=$(systemd-analyze security --offline=yes "$1" 2>&1) || true
  score=$(echo "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
  if [ -z "$score" ]; then
    echo "$out"
    echo "FAIL: no exposure score for $(basename "$1")"
    fail=1
    return
  fi
  echo "$(basename "$1"): exposure $score (at most $2)"
  if awk -v s="$score" -v m="$2" 'BEGIN { exit !(s > m) }'; then
    echo "$out" | grep '✗'
    echo "FAIL: $(basename "$1") is rated $score, above $2"
    fail=1
  fi
}
# systemd-analyze names the unit after its file: copy them under their installed names.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$debian/labd.service" "$work/labd.service"
cp "$debian/lab.lab-serve.service" "$work/lab-serve.service"
check "$work/labd.service" 2.5
check "$work/lab-serve.service" 4.0
exit $fail
