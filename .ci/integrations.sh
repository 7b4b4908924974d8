#!/usr/bin/env bash
# Integration checks for cloud-init user-data and the Terraform examples. Called by .ci/run; also
# runs on its own (as root on Debian 12, or anywhere cloud-init is already installed):
#   1. cloud-init schema on every user-data file in cloud-config/ (omlboot configs are skipped);
#   2. cloud-init schema on the user-data rendered from cloud-config/terraform/**/*.tftpl
#      (rendered by `cargo test --test terraform_hcl`, which also checks them with omlboot validate);
#   3. when terraform is on the PATH (offline: no provider download, no checkpoint call):
#      `terraform fmt -check`; `terraform validate` of remote-exec/ (it needs no provider); the
#      cloudinit_config/ cloud-config documents (user-data.tf) evaluated by Terraform, checked with
#      cloud-init schema and their config with omlboot validate; and every template rendered by
#      Terraform's own templatefile() must equal the test's render byte for byte.
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
  # cloudinit_config/: its cloud-config documents are built in user-data.tf, which needs no provider.
  # Evaluate them offline for aio and a cluster, check them like any user-data, and check the config
  # they carry with omlboot validate.
  target_dir=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  omlboot_bin=$target_dir/debug/omlboot # built by the cargo test above
  ci=$work/tf-cloudinit
  mkdir -p "$ci"
  cp cloud-config/terraform/cloudinit_config/{variables.tf,user-data.tf,config.yaml.tftpl} "$ci/"
  (cd "$ci" && terraform init -backend=false -input=false -no-color >/dev/null)
  for layout in aio cluster; do
    cat >"$ci/sample.tfvars" <<TFVARS
layout             = "$layout"
hosts              = { data = "10.10.10.11", voice = "10.10.10.12", app = "10.10.10.13" }
infra_env          = "lan"
postgres_password  = "p@ss: #1 \"q\" 'x' <&> {[%]}"
ami_password       = "Sample-Ami-Pass1"
s3_http_admin_pass = "Sample-Minio-Root1"
bucket_secret_key  = "Sample-Bucket-Secret1"
TFVARS
    roles=aio
    if [ "$layout" = cluster ]; then roles="data voice app"; fi
    for role in $roles; do
      out=$ci/cloudinit_config.$role.yaml
      b64=$(cd "$ci" &&
        printf 'nonsensitive(base64encode(local.cloud_config["%s"]))\n' "$role" |
        terraform console -var-file=sample.tfvars)
      b64=${b64#\"}
      b64=${b64%\"}
      printf '%s' "$b64" | base64 -d >"$out"
      schema "$out"
      python3 - "$out" "$out.config" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
f = [w for w in doc["write_files"] if w["path"] == "/etc/omlboot/config.yaml"][0]
assert f["permissions"] == "0600" and f["owner"] == "root:root", f
assert doc["runcmd"] == [["/usr/local/bin/omlboot", "run"]], doc["runcmd"]
assert yaml.safe_load(f["content"])["postgres_password"] == "p@ss: #1 \"q\" 'x' <&> {[%]}"
open(sys.argv[2], "w").write(f["content"])
PY
      if "$omlboot_bin" validate --config "$out.config" >/dev/null; then
        printf 'ok    omlboot validate: the config in %s\n' "$(basename "$out")"
        checked=$((checked + 1))
      else
        failures+=("$out (omlboot validate)")
      fi
    done
  done

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
