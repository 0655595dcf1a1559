#!/usr/bin/env bash
# The Debian packages on a real Debian 12 system: a chroot made by mmdebstrap (minimal system
# with systemd and adduser), the packages installed with apt, then checked: files, modes and
# owners, the lab user, both programs run, the installed default configuration changes nothing,
# `systemd-analyze verify` on both units; an upgrade from an older version keeps an edited
# conffile and the state; remove keeps configuration and state; purge removes them.
#
# Under systemd as PID 1 (services active, the watchdog restarting a hung labd, labd joining):
# tests/package/vm_test.sh.
#
# Usage: tests/package/package_test.sh [PACKAGES_DIR]   (default build/packages; needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packages=$(realpath "${1:-$here/../../build/packages}")
lab_deb=$(ls "$packages"/lab_*_amd64.deb 2>/dev/null | head -1)
labd_deb=$(ls "$packages"/labd_*_amd64.deb 2>/dev/null | head -1)
if [ -z "$lab_deb" ] || [ -z "$labd_deb" ]; then
  echo "FAIL: no lab_*.deb and labd_*.deb in $packages: run 'make package' first (make test does)"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "FAIL: needs root (mmdebstrap, chroot)"
  exit 1
fi
work=$(mktemp -d /var/tmp/lab-package-test.XXXXXX)
root=$work/root
cleanup() {
  for m in proc sys dev/pts dev; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
expect_stat() {  # expect_stat PATH "MODE OWNER GROUP"
  local got
  got=$(in_root stat -c '%a %U %G' "$1" 2>/dev/null || echo missing)  # names as the chroot knows them
  if [ "$got" = "$2" ]; then ok "$1 is $2"; else fail "$1 is '$got', expected '$2'"; fi
}

# An older version of the same packages, to upgrade from.
older=$work/older
mkdir -p "$older"
for deb in "$lab_deb" "$labd_deb"; do
  x=$work/unpacked
  rm -rf "$x"
  dpkg-deb -R "$deb" "$x"
  sed -i 's/^Version: .*/Version: 0.0.1/' "$x/DEBIAN/control"
  dpkg-deb -b -Zxz "$x" "$older/" >/dev/null
done
version=$(dpkg-deb -f "$lab_deb" Version)

echo "== mmdebstrap: Debian 12 minbase with systemd and adduser"
# The package lists stay (apt resolves the packages' dependencies from them below).
mmdebstrap --quiet --variant=minbase --include=systemd,adduser,ca-certificates \
  --skip=cleanup/apt/lists bookworm "$root" \
  http://deb.debian.org/debian >"$work/mmdebstrap.log" 2>&1 || {
  tail -20 "$work/mmdebstrap.log"
  echo "FAIL: mmdebstrap could not make the test system"
  exit 1
}
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp "$older"/*.deb "$lab_deb" "$labd_deb" "$root/tmp/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# No service starts inside the chroot (there is no systemd running to start it anyway).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
apt_install() {
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
    >>"$work/apt.log" 2>&1
}

echo "== install the older version with apt (dependencies from the mirror)"
if apt_install /tmp/lab_0.0.1_amd64.deb /tmp/labd_0.0.1_amd64.deb; then
  ok "apt installed lab and labd 0.0.1"
else
  tail -20 "$work/apt.log"
  fail "apt could not install the packages"
  exit 1
fi

echo "== files, users, modes"
expect_stat /usr/bin/lab "755 root root"
expect_stat /usr/bin/labd "755 root root"
expect_stat /etc/lab/lab.toml "644 root root"
expect_stat /etc/lab/labd.toml "644 root root"
expect_stat /lib/systemd/system/lab-serve.service "644 root root"
expect_stat /lib/systemd/system/labd.service "644 root root"
expect_stat /usr/lib/tmpfiles.d/labd.conf "644 root root"
expect_stat /var/lib/lab "750 lab lab"
expect_stat /var/lib/labd "700 root root"
for page in lab labd lab-node-list labd-status; do
  [ -f "$root/usr/share/man/man1/$page.1.gz" ] && ok "man page $page(1)" || fail "no man page $page(1)"
done
for f in /usr/share/bash-completion/completions/lab /usr/share/bash-completion/completions/labd \
  /usr/share/zsh/vendor-completions/_lab /usr/share/fish/vendor_completions.d/labd.fish; do
  [ -f "$root$f" ] && ok "completion $f" || fail "no completion $f"
done
# The installed bash completion completes the installed program's commands.
words=$(in_root bash -c 'source /usr/share/bash-completion/completions/lab; COMP_WORDS=(lab node li);
  COMP_CWORD=2; _lab_complete; echo "${COMPREPLY[*]}"')
[ "$words" = list ] && ok "bash completion: 'lab node li' completes to list" ||
  fail "bash completion of 'lab node li' gave '$words'"
user=$(in_root getent passwd lab || true)
uid=$(echo "$user" | cut -d: -f3)
if [ -n "$uid" ] && [ "$uid" -lt 1000 ] && [ "$(echo "$user" | cut -d: -f7)" = /usr/sbin/nologin ]; then
  ok "system user lab (uid $uid, no login shell)"
else
  fail "no system user lab with a nologin shell: '$user'"
fi
# labd.service runs in the tss group (/dev/tpmrm0 is tss:tss 0660); labd's postinst makes it.
in_root getent group tss >/dev/null && ok "group tss exists" || fail "no group tss for labd.service"
conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' lab labd)
for f in /etc/lab/lab.toml /etc/lab/labd.toml; do
  echo "$conffiles" | grep -q " $f " && ok "$f is a conffile" || fail "$f is not a conffile"
done
for unit in lab-serve labd; do
  if in_root systemctl is-enabled "$unit.service" >/dev/null 2>&1; then
    fail "$unit.service is enabled on install (the operator enables it)"
  else
    ok "$unit.service is installed, not enabled"
  fi
done

echo "== the programs run; the installed configuration changes nothing"
in_root lab --version | grep -q '^lab ' && ok "lab --version: $(in_root lab --version)" ||
  fail "lab --version"
in_root labd --version | grep -q '^labd ' && ok "labd --version: $(in_root labd --version)" ||
  fail "labd --version"
shown=$(in_root lab serve --show-config 2>&1) || fail "lab serve --show-config: $shown"
if echo "$shown" | grep -v '# default$' | grep -q .; then
  fail "the installed lab.toml sets keys: $(echo "$shown" | grep -v '# default$' | head -3)"
else
  ok "lab serve reads /etc/lab/lab.toml as installed: every key at its default"
fi
set +e
status=$(in_root labd status 2>&1)
code=$?
set -e
if [ $code = 5 ]; then
  ok "labd status before joining exits 5 (not joined)"
else
  fail "labd status before joining: exit $code: $status"
fi

echo "== systemd-analyze verify"
for unit in lab-serve labd; do
  if out=$(in_root systemd-analyze verify "/lib/systemd/system/$unit.service" 2>&1); then
    ok "systemd-analyze verify $unit.service"
  else
    fail "systemd-analyze verify $unit.service: $out"
  fi
done

echo "== upgrade to $version with an edited conffile and state"
echo 'log.level = "debug"  # edited by the operator' >>"$root/etc/lab/lab.toml"
echo state >"$root/var/lib/lab/operator-state"
echo state >"$root/var/lib/labd/node-state"
if apt_install "/tmp/$(basename "$lab_deb")" "/tmp/$(basename "$labd_deb")"; then
  ok "apt upgraded to $version"
else
  tail -20 "$work/apt.log"
  fail "apt could not upgrade"
fi
got=$(in_root dpkg-query -W -f='${Version} ' lab labd)
[ "$got" = "$version $version " ] && ok "both at $version" || fail "versions after upgrade: $got"
grep -q 'edited by the operator' "$root/etc/lab/lab.toml" && ok "the edited lab.toml is kept" ||
  fail "the upgrade replaced the edited lab.toml"
[ -f "$root/var/lib/lab/operator-state" ] && [ -f "$root/var/lib/labd/node-state" ] &&
  ok "state kept across the upgrade" || fail "state lost in the upgrade"
in_root lab serve --show-config 2>&1 | grep -q 'log.level = "debug"  # /etc/lab/lab.toml' &&
  ok "lab serve reads the edited key from /etc/lab/lab.toml" || fail "the edited key is not read"

echo "== remove keeps configuration and state; purge removes them"
in_root dpkg -r lab labd >>"$work/apt.log" 2>&1 || fail "dpkg -r"
[ ! -e "$root/usr/bin/lab" ] && [ ! -e "$root/usr/bin/labd" ] && ok "programs removed" ||
  fail "programs left after remove"
[ -f "$root/etc/lab/lab.toml" ] && [ -f "$root/var/lib/lab/operator-state" ] &&
  [ -f "$root/var/lib/labd/node-state" ] && ok "configuration and state kept after remove" ||
  fail "remove deleted configuration or state"
in_root dpkg -P lab labd >>"$work/apt.log" 2>&1 || fail "dpkg -P"
for p in /etc/lab/lab.toml /etc/lab/labd.toml /var/lib/lab /var/lib/labd; do
  [ ! -e "$root$p" ] && ok "purge removed $p" || fail "purge left $p"
done

if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed; apt/dpkg log:"
  tail -30 "$work/apt.log"
  exit 1
fi
echo "all package checks passed"
