#!/usr/bin/env bash
# Checks the Packer template: installs Debian's packer (and ssh-keygen) when missing, then runs `packer validate`
# on packer/ twice: with only the required variables, and with every optional one set (config file, offline
# bundle, image and settings maps, extra QEMU arguments). Exits non-zero when either fails.
# Needs root for apt-get only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v packer >/dev/null 2>&1 || need+=(packer)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export CHECKPOINT_DISABLE=1
packer version

# validate reads the files it is given: the SSH key must be a real key, the uploads and the seed must exist.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$tmp/id_ed25519"
printf '#cloud-config\n{}\n' > "$tmp/user-data"
printf 'instance-id: validate\n' > "$tmp/meta-data"
printf 'role: aio\n' > "$tmp/config.yaml"
: > "$tmp/omlboot"
: > "$tmp/bundle.tar"
: > "$tmp/base.qcow2"

required=(
  -var "base_image=$tmp/base.qcow2"
  -var "base_image_checksum=none"
  -var "omlboot_binary=$tmp/omlboot"
  -var "ssh_private_key_file=$tmp/id_ed25519"
  -var "seed_files=[\"$tmp/user-data\", \"$tmp/meta-data\"]"
)

echo "packer validate packer/ (required variables only)"
packer validate "${required[@]}" packer/

echo "packer validate packer/ (every optional variable set, and the example var file)"
packer validate "${required[@]}" \
  -var-file=packer/example.pkrvars.hcl \
  -var "config_file=$tmp/config.yaml" \
  -var "image_bundle=$tmp/bundle.tar" \
  -var 'settings={skip_packages = "true"}' \
  -var 'accelerator=tcg' -var 'restrict_network=true' \
  -var 'extra_qemuargs=[["-serial", "file:serial.log"]]' \
  packer/

echo "packer: template valid"
