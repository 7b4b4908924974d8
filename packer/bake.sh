#!/bin/bash
# Runs `packer build` on packer/ with a throwaway login for the build VM:
# makes a fresh ed25519 key and a NoCloud seed (user-data creating user "packer" with that key and passwordless sudo,
# meta-data with a new instance-id and hostname localhost, which sudo resolves and which leaves the image no
# build-specific hostname), passes them as -var ssh_private_key_file / seed_files, and deletes both on exit.
# The template removes that user from the image before shutdown (remove_build_user).
#
#   packer/bake.sh -var-file=packer/example.pkrvars.hcl [-var key=value ...] [other packer build flags]
#
# Env: PACKER (packer binary, default "packer"), OMLBOOT_BAKE_SSH_USER (default "packer").
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACKER=${PACKER:-packer}
USER_NAME=${OMLBOOT_BAKE_SSH_USER:-packer}

command -v ssh-keygen >/dev/null || { echo "bake.sh: ssh-keygen is missing (apt-get install openssh-client)" >&2; exit 2; }
command -v "$PACKER" >/dev/null || { echo "bake.sh: $PACKER is missing (apt-get install packer)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/omlboot-bake.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ssh-keygen -q -t ed25519 -N '' -C "omlboot-bake" -f "$WORK/id_ed25519"
mkdir "$WORK/seed"
cat > "$WORK/seed/user-data" <<USERDATA
#cloud-config
# Build VM only: one login for packer, removed again before the image is closed.
users:
  - name: $USER_NAME
    shell: /bin/bash
    lock_passwd: true
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    ssh_authorized_keys:
      - $(cat "$WORK/id_ed25519.pub")
ssh_pwauth: false
USERDATA
printf 'instance-id: omlboot-bake-%s-%s\nlocal-hostname: localhost\n' "$(date +%s)" "$$" > "$WORK/seed/meta-data"

set +e
"$PACKER" build \
  -var "ssh_username=$USER_NAME" \
  -var "ssh_private_key_file=$WORK/id_ed25519" \
  -var "seed_files=[\"$WORK/seed/user-data\", \"$WORK/seed/meta-data\"]" \
  "$@" "$HERE"
rc=$?
exit $rc
