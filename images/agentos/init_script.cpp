#include "images/agentos/init_script.hpp"

namespace lab::images {

const std::string_view kAgentOsInit = R"sh(#!/bin/sh
# /init of the lab agent OS. Runs as PID 1 from the initramfs: never exits.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run/lab /var/lib/labd /etc/lab
say() { echo "lab-agent-os: $*"; }
halt_here() {
  say "$*"
  say "stopped; the appliance's flight recorder for this machine has the details"
  while :; do sleep 3600; done
}
say "starting, kernel $(uname -r)"

while read -r m; do
  insmod "/lib/modules/$m.ko" 2>/dev/null
done < /lib/modules/load-order

# The boot interface: the one whose MAC the appliance put on the command line (lab.mac= or
# iPXE's BOOTIF=01-aa-bb-…), else the first with a link.
mac=
for p in $(cat /proc/cmdline); do
  case "$p" in
    lab.mac=*) mac=${p#lab.mac=} ;;
    BOOTIF=01-*) mac=$(echo "${p#BOOTIF=01-}" | tr '-' ':') ;;
  esac
done
mac=$(echo "$mac" | tr 'A-F' 'a-f')
ip link set lo up
iface=
tries=0
while [ -z "$iface" ] && [ "$tries" -lt 50 ]; do
  for dev in /sys/class/net/*; do
    n=${dev##*/}
    [ "$n" = lo ] && continue
    if [ -n "$mac" ]; then
      [ "$(cat "$dev/address")" = "$mac" ] && iface=$n
    elif [ -z "$iface" ]; then
      iface=$n
    fi
  done
  [ -z "$iface" ] && { tries=$((tries + 1)); sleep 0.1; }
done
[ -n "$iface" ] || halt_here "no network interface${mac:+ with MAC $mac}"
ip link set "$iface" up
udhcpc -i "$iface" -s /etc/udhcpc.script -n -q -t 10 -T 2 >/dev/null 2>&1 ||
  halt_here "no DHCP answer on $iface"
say "network up: $iface $(ip -4 -o addr show dev "$iface" | awk '{print $4}')"

/bin/labd boot --cmdline /proc/cmdline
rc=$?
halt_here "labd boot exited with status $rc"
)sh";

const std::string_view kUdhcpcScript = R"sh(#!/bin/sh
# udhcpc event script of the lab agent OS.
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
    if [ -n "$router" ]; then
      ip route del default 2>/dev/null
      for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
)sh";

}  // namespace lab::images
