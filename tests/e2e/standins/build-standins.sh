#!/bin/bash
# Builds (or reuses) the stand-in component images: the offline bundle (tar of OCI archives) and a
# docker-registry storage tree with the same images. No registry or container engine is used.
#
# Output: a directory $CACHE/standins-<key>/ with bundle.tar, registry/, image-overrides.yaml, sizes.json,
# standin (the static binary); printed on the last line of stdout. <key> hashes every input under
# tests/e2e/standins. The slow part, the Debian rootfs of the real-server layer, is cached on its own
# ($CACHE/servers-rootfs-<key>.tar) so editing the spec or the stand-in program does not re-run mmdebstrap.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E=$(dirname "$HERE")
CACHE=${OMLBOOT_E2E_CACHE:-$E2E/.cache}
MIRROR=${E2E_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${E2E_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
mkdir -p "$CACHE"

hash_files() { for f in "$@"; do echo "== $f"; cat "$f"; done | sha256sum | cut -c1-16; }
srv_key=$(cd "$HERE" && hash_files build-standins.sh servers-packages.txt)
all_key=$(cd "$HERE" && hash_files build-standins.sh servers-packages.txt components.json mkimages.py \
  server-entrypoint.sh standin/Cargo.toml $(find standin/src -type f | LC_ALL=C sort))
OUT=$CACHE/standins-$all_key
if [ -f "$OUT/.complete" ]; then
  echo "build-standins: reusing $OUT" >&2
  echo "$OUT"
  exit 0
fi
"$E2E/setup-host.sh" >&2
exec 9>"$CACHE/.build-standins.lock"
flock 9
if [ -f "$OUT/.complete" ]; then echo "$OUT"; exit 0; fi
t0=$(date +%s)

# 1. the stand-in program, static.
TGT=$CACHE/standin-target
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  cargo build --quiet --release --locked --target x86_64-unknown-linux-musl --manifest-path "$HERE/standin/Cargo.toml" --target-dir "$TGT" >&2
  BIN=$TGT/x86_64-unknown-linux-musl/release/standin
else
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu \
    --manifest-path "$HERE/standin/Cargo.toml" --target-dir "$TGT" >&2
  BIN=$TGT/x86_64-unknown-linux-gnu/release/standin
fi

# 2. the Debian layer of the real-server images.
SRV=$CACHE/servers-rootfs-$srv_key.tar
if [ ! -f "$SRV" ]; then
  PKGS=$(grep -v '^\s*#' "$HERE/servers-packages.txt" | grep -v '^\s*$' | paste -sd, -)
  echo "build-standins: mmdebstrap servers rootfs ($PKGS)" >&2
  mmdebstrap --mode=root --variant=minbase --format=tar --include="$PKGS" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/postgresql/*/main "$1"/etc/postgresql/*/main "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/debconf/*-old "$1"/var/log/*.log' \
    --customize-hook='mkdir -p "$1/var/lib/postgresql/data" "$1/data" && chroot "$1" chown postgres:postgres /var/lib/postgresql/data' \
    --customize-hook='rm -rf "$1"/usr/lib/x86_64-linux-gnu/libLLVM-*.so* "$1"/usr/lib/x86_64-linux-gnu/libz3.so* "$1"/usr/lib/postgresql/*/lib/bitcode "$1"/usr/lib/postgresql/*/lib/llvmjit* "$1"/usr/share/i18n "$1"/usr/share/perl/5.* "$1"/usr/lib/x86_64-linux-gnu/perl/5.*' \
    --customize-hook='d=$(cd "$1" && ls -d usr/lib/postgresql/*/bin | sort -V | tail -1); for b in psql pg_isready pg_dump; do ln -sf "/$d/$b" "$1/usr/local/bin/$b"; done' \
    bookworm "$SRV.tmp" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECMIRROR bookworm-security main" >&2
  mv "$SRV.tmp" "$SRV"
  for old in "$CACHE"/servers-rootfs-*.tar; do [ "$old" != "$SRV" ] && rm -f "$old"; done
fi

# 3. images, bundle, registry storage.
rm -rf "$OUT.tmp"
python3 "$HERE/mkimages.py" --spec "$HERE/components.json" --standin "$BIN" --servers-rootfs-tar "$SRV" --out "$OUT.tmp" >&2
cp "$BIN" "$OUT.tmp/standin"
echo "built in $(( $(date +%s) - t0 ))s" > "$OUT.tmp/.complete"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
for old in "$CACHE"/standins-????????????????; do [ "$old" != "$OUT" ] && rm -rf "$old"; done
echo "build-standins: done in $(( $(date +%s) - t0 ))s: $OUT" >&2
echo "$OUT"
