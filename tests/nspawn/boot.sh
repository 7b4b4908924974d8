#!/bin/bash
# Boot a throw-away systemd container for the D-Bus tests and print the host PID of its
# systemd (PID 1 inside) on stdout once it is fully booted.
#
#   tests/nspawn/boot.sh OWNER_PID
#
# - The root filesystem comes from rootfs.sh (built once, cached, never written to):
#   --volatile=overlay puts a tmpfs overlay on top, so every boot starts clean and nothing
#   needs copying (an -x snapshot would copy ~200 MB on a non-btrfs /var/tmp).
# - --register=no --keep-unit: no machined or host systemd is involved (the host may not run
#   systemd at all).
# - A watcher powers the container off (SIGTERM to nspawn = clean poweroff of the container)
#   once OWNER_PID exits, because the Rust test harness has no global teardown hook.
# - From the host, the container is reached through /proc/<pid>/root: its system bus is
#   unix:path=/proc/<pid>/root/run/dbus/system_bus_socket and its /etc/systemd/system is
#   /proc/<pid>/root/etc/systemd/system. Commands run inside with `nsenter -t <pid> -a --`.
set -euo pipefail

die() { echo "boot.sh: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: boot.sh OWNER_PID"
owner=$1
here=$(dirname "$(readlink -f "$0")")
root=$("$here/rootfs.sh") || die "rootfs.sh failed"

log=$(mktemp /tmp/omlboot-nspawn-boot.XXXXXX)
# stdio away from ours: the caller reads our stdout to EOF, the container must not hold it.
setsid systemd-nspawn --quiet --register=no --keep-unit --volatile=overlay --boot \
    --console=passive --machine="omlt-$owner-$$" -D "$root" >"$log" 2>&1 </dev/null &
nspawn=$!

(
    while kill -0 "$owner" 2>/dev/null && kill -0 "$nspawn" 2>/dev/null; do sleep 1; done
    kill -TERM "$nspawn" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$nspawn" 2>/dev/null || true
    rm -f "$log"
) </dev/null >/dev/null 2>&1 &
disown

fail() { echo "boot.sh: $*" >&2; sed 's/^/  nspawn: /' "$log" >&2; kill -TERM "$nspawn" 2>/dev/null; exit 1; }

leader=
for _ in $(seq 100); do
    kill -0 "$nspawn" 2>/dev/null || fail "systemd-nspawn exited during boot"
    # The container's init is nspawn's direct child once it has exec'd systemd.
    leader=$(pgrep -P "$nspawn" -x systemd | head -n1 || true)
    [ -n "$leader" ] && break
    sleep 0.1
done
[ -n "$leader" ] || fail "no container init under nspawn pid $nspawn"

# systemctl fails until PID 1 listens on its private socket; --wait then blocks to the end of boot.
state=
for _ in $(seq 60); do
    state=$(timeout 60 nsenter -t "$leader" -a -- systemctl is-system-running --wait 2>/dev/null) || true
    case $state in running|degraded) break ;; esac
    sleep 0.5
done
case $state in
    running) ;;
    degraded) echo "boot.sh: container degraded:" >&2
              nsenter -t "$leader" -a -- systemctl --failed --no-legend >&2 || true ;;
    *) fail "container did not finish booting (state: ${state:-unknown})" ;;
esac
[ -S "/proc/$leader/root/run/dbus/system_bus_socket" ] || fail "no system bus socket in the container"
echo "$leader"
