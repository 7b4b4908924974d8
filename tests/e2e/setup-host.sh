#!/bin/bash
# Installs (idempotently) the host tools the VM end-to-end suite needs.
# Safe to call from CI as root with no stdin; a no-op when everything is present.
set -euo pipefail

# tool -> Debian package that provides it
declare -A NEED=(
  [qemu-system-x86_64]=qemu-system-x86
  [mmdebstrap]=mmdebstrap
  [genisoimage]=genisoimage
  [mkfs.ext4]=e2fsprogs
  [debugfs]=e2fsprogs
  [setpriv]=util-linux
  [python3]=python3
  [sha256sum]=coreutils
  [qemu-img]=qemu-utils
  [packer]=packer
  [ssh-keygen]=openssh-client
  [cargo]=
)

missing=()
for tool in "${!NEED[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    pkg=${NEED[$tool]}
    if [ -z "$pkg" ]; then
      echo "setup-host: '$tool' is missing and cannot be installed by apt (install the Rust toolchain)" >&2
      exit 1
    fi
    missing+=("$pkg")
  fi
done
# qemu-system-x86 without recommends still needs SeaBIOS for -kernel boots.
[ -e /usr/share/seabios/bios-256k.bin ] || [ -e /usr/share/qemu/bios-256k.bin ] || missing+=(seabios)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all tools present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: need root to install: ${missing[*]}" >&2
  exit 1
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "setup-host: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${pkgs[@]}" </dev/null
