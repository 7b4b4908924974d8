#!/usr/bin/env bash
# Integration checks for cloud-init user-data and the Terraform examples. Called by .ci/run; also
# runs on its own (as root on Debian 12, or anywhere cloud-init is already installed):
#   1. cloud-init schema on every user-data file in cloud-config/ (omlboot configs are skipped);
#   2. cloud-init schema on the user-data rendered from cloud-config/terraform/**/*.tftpl
#      (rendered by `cargo test --test terraform_hcl`, which also checks them with omlboot validate);
#   3. when terraform is on the PATH: `terraform fmt -check`, `terraform validate` of remote-exec/
#      (it needs no provider), and the same templates rendered by Terraform's own templatefile() must
#      equal the test's renders byte for byte. Offline: no provider download, no checkpoint call.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

work=$(mktemp -d)
added_policy=
cleanup() {
  rm -rf "$work"
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

step "integrations: cloud-init"
if ! command -v cloud-init >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # Start no service while installing: keep an existing policy-rc.d, else add one for the install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends cloud-init >/dev/null
  if [ -n "$added_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
    added_policy=
  fi
  # cloud-init was not on this host before: keep it from running at a later boot here (its systemd
  # generator honours this file). `cloud-init schema` ignores it.
  touch /etc/cloud/cloud-init.disabled
fi
cloud-init --version

failures=()
checked=0
# schema FILE: cloud-init's own schema check of one user-data file.
schema() {
  local out
  if out=$(cloud-init schema --config-file "$1" 2>&1); then
    printf 'ok    %s\n' "$1"
    checked=$((checked + 1))
  else
    printf 'FAIL  %s\n%s\n' "$1" "$out"
    failures+=("$1")
  fi
}
is_user_data() { [ "$(head -n1 "$1")" = "#cloud-config" ]; }

# The check must be able to fail: a user-data with a wrong type is refused.
printf '#cloud-config\nruncmd: 42\nwrite_files: {path: /x}\n' >"$work/broken.yaml"
if cloud-init schema --config-file "$work/broken.yaml" >/dev/null 2>&1; then
  echo "cloud-init schema accepted a broken user-data; this check would prove nothing" >&2
  exit 1
fi
echo "ok    cloud-init schema refuses a broken user-data"

step "integrations: cloud-config/ user-data"
for f in cloud-config/*.yaml cloud-config/examples/*.yaml; do
  if is_user_data "$f"; then
    schema "$f"
  else
    printf 'skip  %s (an omlboot config, not user-data; tests/cloud_config.rs and the README example check it)\n' "$f"
  fi
done

step "integrations: Terraform templates (cargo test --test terraform_hcl)"
renders=$work/renders
OMLBOOT_TF_RENDER_DIR=$renders cargo test --locked --test terraform_hcl
while IFS=$'\t' read -r template vars rendered; do
  if is_user_data "$rendered"; then
    schema "$rendered"
  else
    printf 'skip  %s (an omlboot config; omlboot validate checked it)\n' "$rendered"
  fi
done <"$renders/renders.tsv"

step "integrations: terraform"
if command -v terraform >/dev/null; then
  export CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1
  terraform version
  terraform fmt -check -diff -recursive cloud-config/terraform
  echo "ok    terraform fmt -check cloud-config/terraform"
  checked=$((checked + 1))
  # remote-exec uses no provider, so its `terraform init` downloads nothing: validate it for real.
  # (The other two need the aws / cloudinit providers from the registry.)
  cp -r cloud-config/terraform/remote-exec "$work/tf-remote-exec"
  (cd "$work/tf-remote-exec" && terraform init -backend=false -input=false -no-color >/dev/null &&
    terraform validate -no-color)
  echo "ok    terraform validate cloud-config/terraform/remote-exec"
  checked=$((checked + 1))
  mkdir -p "$work/tf"
  while IFS=$'\t' read -r template vars rendered; do
    # base64 so the console prints one plain string whatever the render holds.
    b64=$(cd "$work/tf" &&
      printf 'base64encode(templatefile("%s", jsondecode(file("%s"))))\n' "$template" "$vars" |
      terraform console)
    b64=${b64#\"}
    b64=${b64%\"}
    printf '%s' "$b64" | base64 -d >"$work/tf/out"
    if cmp -s "$work/tf/out" "$rendered"; then
      printf 'ok    terraform templatefile == test render: %s\n' "$(basename "$rendered")"
      checked=$((checked + 1))
    else
      printf 'FAIL  terraform templatefile differs from the test render: %s\n' "$rendered"
      diff -u "$rendered" "$work/tf/out" || true
      failures+=("$rendered (terraform)")
    fi
  done <"$renders/renders.tsv"
else
  echo "skip  terraform is not on the PATH: no terraform fmt, no Terraform render cross-check"
fi

step "integrations: summary"
if [ "${#failures[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
  echo "integrations: $checked passed, ${#failures[@]} failed"
  exit 1
fi
echo "integrations: $checked passed, 0 failed"
