#!/bin/bash
# Build (once) the Debian 12 root filesystem the systemd D-Bus tests boot under systemd-nspawn,
# and print its path on stdout.
#
# The rootfs is cached under /var/tmp/omlboot-nspawn-<hash>; the hash covers this script, so
# changing the package list or the tweaks below builds a fresh tree instead of reusing a stale one.
# The tree is never modified after it is built: boot.sh runs it with --volatile=overlay, so every
# boot starts from the same pristine state and the cache can be shared by concurrent test runs.
#
# Needs root. Installs the host tools it needs (mmdebstrap, systemd-container) with apt-get if they
# are missing. The only network traffic is mmdebstrap/apt-get talking to the Debian mirror
# configured on the host.
set -euo pipefail

SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus

die() { echo "rootfs.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap and systemd-nspawn need it)"

need_pkgs=()
command -v mmdebstrap >/dev/null || need_pkgs+=(mmdebstrap)
command -v systemd-nspawn >/dev/null || need_pkgs+=(systemd-container)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "rootfs.sh: installing host tools: ${need_pkgs[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2; } \
        || die "apt-get install ${need_pkgs[*]} failed"
fi

hash=$(sha256sum "$0" | cut -c1-12)
dir=/var/tmp/omlboot-nspawn-$hash
if [ -e "$dir/.complete" ]; then
    echo "$dir"
    exit 0
fi

# Serialize builders: several test processes may start cold at the same time.
exec 9>"/var/tmp/omlboot-nspawn-$hash.lock"
flock 9
if [ -e "$dir/.complete" ]; then
    echo "$dir"
    exit 0
fi

tmp=$dir.tmp.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "rootfs.sh: building $dir with mmdebstrap (one time, ~1-3 min)" >&2
mmdebstrap --variant=minbase --include="$INCLUDE" \
    --customize-hook='echo omlboot-test > "$1/etc/hostname"' \
    --customize-hook='rm -f "$1/etc/machine-id"; touch "$1/etc/machine-id"' \
    "$SUITE" "$tmp" >&2 || die "mmdebstrap failed"

# Units that only slow the boot down or fail in a container; masking them keeps
# `is-system-running` at "running" so a degraded state means something in a test.
for u in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
         e2scrub_all.timer fstrim.timer man-db.timer systemd-tmpfiles-clean.timer; do
    ln -sf /dev/null "$tmp/etc/systemd/system/$u"
done
# Console login is useless here and getty on a pseudo-tty keeps restarting.
ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$tmp/etc/systemd/system/getty@.service"

touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
