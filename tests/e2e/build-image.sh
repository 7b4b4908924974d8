#!/bin/bash
# Builds (or reuses) the Debian 12 guest image of the e2e test bed.
#
# Output: a directory $CACHE/guest-<key>/ holding vmlinuz, initrd.img and root.img (sparse ext4, label rootfs),
# where <key> hashes this script, guest/packages.txt and everything under guest/files. Prints that directory
# on the last line of stdout. A second run with the same inputs only prints it.
#
# Env: OMLBOOT_E2E_CACHE (default tests/e2e/.cache), E2E_MIRROR (default http://deb.debian.org/debian),
#      E2E_SECURITY_MIRROR (default http://deb.debian.org/debian-security), E2E_ROOT_SIZE (default 24G, sparse).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${OMLBOOT_E2E_CACHE:-$HERE/.cache}
MIRROR=${E2E_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${E2E_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
ROOT_SIZE=${E2E_ROOT_SIZE:-24G}

key=$( { cat "${BASH_SOURCE[0]}" "$HERE/guest/packages.txt";
         (cd "$HERE/guest/files" && find . -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done);
         echo "size=$ROOT_SIZE"; } | sha256sum | cut -c1-16)
OUT=$CACHE/guest-$key
if [ -f "$OUT/.complete" ]; then
  echo "build-image: reusing $OUT" >&2
  echo "$OUT"
  exit 0
fi

"$HERE/setup-host.sh" >&2
mkdir -p "$CACHE"
# Only one builder at a time per cache directory.
exec 9>"$CACHE/.build-image.lock"
flock 9
if [ -f "$OUT/.complete" ]; then echo "$OUT"; exit 0; fi

t0=$(date +%s)
WORK=$(mktemp -d "$CACHE/.guest-build.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
ROOT=$WORK/rootfs
PKGS=$(grep -v '^\s*#' "$HERE/guest/packages.txt" | grep -v '^\s*$' | paste -sd, -)

echo "build-image: mmdebstrap bookworm -> $ROOT" >&2
mmdebstrap --mode=root --variant=minbase --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook='cp -a "'"$HERE"'/guest/files/." "$1/"' \
  --customize-hook='echo e2e-guest > "$1/etc/hostname"' \
  --customize-hook='printf "LABEL=rootfs / ext4 rw,errors=remount-ro 0 1\nLABEL=e2epayload /mnt/e2e ext4 rw,nofail,x-systemd.device-timeout=600s 0 0\n" > "$1/etc/fstab"' \
  --customize-hook='mkdir -p "$1/mnt/e2e"' \
  --customize-hook='echo "en_US.UTF-8 UTF-8" > "$1/etc/locale.gen" && chroot "$1" locale-gen && echo LANG=en_US.UTF-8 > "$1/etc/default/locale"' \
  --customize-hook='chroot "$1" systemctl enable e2e-payload.service' \
  --customize-hook='chroot "$1" systemctl disable podman-restart.service podman-auto-update.timer' \
  --customize-hook='chroot "$1" update-initramfs -u -k all' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_* "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  bookworm "$ROOT" \
  "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECMIRROR bookworm-security main" >&2

mkdir -p "$WORK/out"
cp "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)" "$WORK/out/vmlinuz"
cp "$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)" "$WORK/out/initrd.img"
chmod 0644 "$WORK/out/vmlinuz" "$WORK/out/initrd.img"
echo "build-image: mkfs.ext4 -d ($(du -sh "$ROOT" | cut -f1) of files) into a $ROOT_SIZE sparse image" >&2
mkfs.ext4 -q -F -L rootfs -d "$ROOT" "$WORK/out/root.img" "$ROOT_SIZE" >&2
echo "$PKGS" | tr , '\n' > "$WORK/out/packages.txt"
chroot "$ROOT" dpkg-query -W -f '${Package} ${Version}\n' > "$WORK/out/dpkg-versions.txt"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
echo "built in $(( $(date +%s) - t0 ))s" > "$OUT/.complete"
echo "build-image: done in $(( $(date +%s) - t0 ))s: $OUT" >&2
# Keep the cache lean: drop older guest images.
for old in "$CACHE"/guest-*; do [ "$old" != "$OUT" ] && rm -rf "$old"; done
echo "$OUT"
