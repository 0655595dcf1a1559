#!/usr/bin/env bash
# Fails when a tracked C++ file is not clang-formatted (.clang-format at the root).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "SKIP: not a git checkout"; exit 0
fi
git ls-files -z '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run -Werror
