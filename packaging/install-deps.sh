#!/usr/bin/env bash
# Installs every build and test dependency of lab from Debian 12 packages.
# Idempotent: silent when everything is already installed. Needs root (or sudo).
set -euo pipefail

# Build: compilers, CMake/Ninja, and the libraries lab links against.
build_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  clang clang-format clang-tidy libclang-rt-14-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libcurl4-openssl-dev libsqlite3-dev libarchive-dev libssh-dev
  libtss2-dev libcli11-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libsystemd-dev
  libyaml-dev  # --output yaml
  libgtest-dev libgmock-dev libbenchmark-dev
  debhelper  # make package: dpkg-buildpackage with dh
  lld-16      # links labd in the order of agent/labd/labd.order
)

# Test: the real peers the integration, e2e and benchmark tests drive.
test_packages=(
  curl sqlite3 iproute2 iputils-ping nftables procps psmisc util-linux
  swtpm swtpm-tools tpm2-tools
  isc-dhcp-client kea-admin kea-dhcp4-server dnsmasq-base
  tftp-hpa atftp tftpd-hpa
  nginx-light wrk
  openssh-server openssh-client
  qemu-system-x86 qemu-utils ipxe ipxe-qemu ovmf
  busybox-static  # udhcpc in DHCP tests and the agent OS init: static, no libraries to copy
  zstd            # reading agent-OS initramfs images in tests
  lintian mmdebstrap  # the package tests: lintian, apt in a chroot, a booted Debian image
  e2fsprogs python3   # mke2fs -d for that image; JSON in the shell tests
  fdisk dosfstools    # the disk deploy: sfdisk and mkfs.fat (and in the agent OS)
  python3-yaml man-db zsh fish  # reading -o yaml back; rendering man pages; completion scripts
  jq  # make demo reads the CLI's JSON
  prometheus  # promtool check metrics, and a real server scraping lab serve
  valgrind    # tests/bench/agent/order.sh profiles labd with callgrind
)

# The agent OS kernel: Debian's linux-image package, downloaded (never installed) for
# `lab image agent-os` and its tests.
kernel_dir=/var/cache/lab/kernel
have_kernel() { ls "$kernel_dir"/linux-image-*.deb >/dev/null 2>&1; }
fetch_kernel() {
  have_kernel && return 0
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}')
  if [ -z "$pkg" ]; then
    echo "install-deps: cannot find the package behind linux-image-amd64" >&2
    return 1
  fi
  mkdir -p "$kernel_dir"
  if ! (cd "$kernel_dir" && apt-get download -qq -o APT::Sandbox::User=root "$pkg"); then
    echo "install-deps: apt-get download $pkg failed" >&2
    return 1
  fi
  echo "install-deps: downloaded $pkg to $kernel_dir"
}

want=("${build_packages[@]}" "${test_packages[@]}")

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && have_kernel && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -E "$0" "$@"
  fi
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run this script as root (or install sudo) to install them" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -eq 0 ]; then
  fetch_kernel
  exit 0
fi
echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"

# Server packages (sshd, nginx, kea, dnsmasq, tftpd) must not start their services
# on install: tests start their own instances. policy-rc.d exit 101 forbids it.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

log=$(mktemp)
if ! apt-get update -qq >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-deps: apt-get update failed (see above); check the network and /etc/apt/sources.list" >&2
  exit 1
fi
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "install-deps: apt-get install failed for: ${missing[*]}" >&2
  exit 1
fi
rm -f "$log"
fetch_kernel
echo "install-deps: done"
exit 0
