#!/usr/bin/env bash
# Builds the two Debian packages, labd and lab, from the programs of a Release build, with
# debhelper (packaging/debian), and checks them with lintian.
# Usage: packaging/package.sh [BUILD_DIR] [OUT_DIR] [VERSION]
#   BUILD_DIR  a Release build holding bootstrap/lab/lab and agent/labd/labd (build/release)
#   OUT_DIR    where the .deb files go (build/packages)
#   VERSION    package version (default: the project version and the commit's time, so each
#              commit's packages upgrade the previous commit's)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(realpath "${1:-$root/build/release}")
out=${2:-$root/build/packages}
project_version=$(sed -n 's/^project(lab VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
# The commit's time: reproducible for one commit, newer for a later one.
epoch=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
version=${3:-$project_version+git$(date -u -d "@$epoch" +%Y%m%d.%H%M%S)}
for bin in bootstrap/lab/lab agent/labd/labd; do
  if [ ! -x "$build/$bin" ]; then
    echo "package: $build/$bin is missing; build it first (make package does)" >&2
    exit 1
  fi
done

work=$(mktemp -d /tmp/lab-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/lab-$version
mkdir -p "$src/staged"
cp -r "$here/debian" "$src/debian"
cp "$build/bootstrap/lab/lab" "$build/agent/labd/labd" "$src/staged/"
# The default configuration files, printed by the programs from their own schemas.
"$src/staged/lab" serve --config-template >"$src/staged/lab.toml"
"$src/staged/labd" --config-template >"$src/staged/labd.toml"
# Manual pages (one per command) and shell completion, generated from each program's own
# command tree, so that they cannot drift from what the programs accept.
for bin in lab labd; do
  "$src/staged/$bin" man --out "$src/staged/man-$bin"
  mkdir -p "$src/staged/bash-$bin" "$src/staged/zsh-$bin" "$src/staged/fish-$bin"
  "$src/staged/$bin" completion bash >"$src/staged/bash-$bin/$bin"
  "$src/staged/$bin" completion zsh >"$src/staged/zsh-$bin/_$bin"
  "$src/staged/$bin" completion fish >"$src/staged/fish-$bin/$bin.fish"
done
commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
maintainer=$(sed -n 's/^Maintainer: //p' "$here/debian/control")
cat >"$src/debian/changelog" <<CHANGELOG
lab ($version) unstable; urgency=medium

  * Built from commit $commit.

 -- $maintainer  $(date -u -R -d "@$epoch")
CHANGELOG

export SOURCE_DATE_EPOCH=$epoch
(cd "$src" && dpkg-buildpackage --build=binary --no-sign --no-check-builddeps \
  >"$work/build.log" 2>&1) || {
  cat "$work/build.log" >&2
  echo "package: dpkg-buildpackage failed (log above)" >&2
  exit 1
}
mkdir -p "$out"
rm -f "$out"/lab_*.deb "$out"/labd_*.deb
mv "$work"/lab_"$version"_*.deb "$work"/labd_"$version"_*.deb "$out/"
for deb in "$out"/lab_"$version"_*.deb "$out"/labd_"$version"_*.deb; do
  echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"
done
# lintian: an error or a warning fails the build (the informational tags left are listed with
# their reasons in packaging/README.md).
rc=0
report=$(lintian --fail-on error,warning "$out"/lab_"$version"_*.deb "$out"/labd_"$version"_*.deb 2>&1) ||
  rc=$?
echo "$report" | grep -v 'running with root privileges is not recommended' || true
if [ $rc != 0 ]; then
  echo "package: lintian reports errors or warnings (above)" >&2
  exit 1
fi
