# Provision existing hosts over SSH: copy the omlboot binary and a config, run `omlboot apply`
# (or `run`), and fail unless it exits 0 (or 3, degraded, when fail_on_degraded is false).
# For hosts created in the same configuration, put the same provisioners in the VM resource, or keep
# this terraform_data and set each target's address from the VM's attributes.

locals {
  # Private staging directory for the upload (the config holds passwords); removed by the script.
  staging = "/tmp/omlboot-terraform"
  sudo    = var.ssh_user == "root" ? "" : "sudo -n "

  private_ip = { for role, t in var.targets : role => t.private_ip }

  config = {
    for role in keys(var.targets) : role => templatefile("${path.module}/config.yaml.tftpl", {
      role               = role
      tenant_id          = var.tenant_id
      tz                 = var.tz
      infra_env          = var.infra_env
      data_host          = lookup(local.private_ip, "data", "")
      voice_host         = lookup(local.private_ip, "voice", "")
      application_host   = lookup(local.private_ip, "app", "")
      postgres_password  = var.postgres_password
      ami_password       = var.ami_password
      s3_http_admin_pass = var.s3_http_admin_pass
      bucket_secret_key  = var.bucket_secret_key
    })
  }
}

resource "terraform_data" "omlboot" {
  # Every host at once, as they would provision from user-data.
  for_each = var.targets

  # A new binary, config or script runs the provisioners again.
  triggers_replace = {
    binary = filesha256(var.omlboot_binary)
    config = sha256(local.config[each.key])
    script = filesha256("${path.module}/omlboot-remote.sh")
  }

  connection {
    type        = "ssh"
    host        = each.value.address
    port        = var.ssh_port
    user        = var.ssh_user
    private_key = file(pathexpand(var.ssh_private_key_file))
    timeout     = "5m"
  }

  # rm fails (and so the provisioner) if someone else owns the path.
  provisioner "remote-exec" {
    inline = ["rm -rf ${local.staging} && mkdir -m 0700 ${local.staging}"]
  }

  provisioner "file" {
    source      = var.omlboot_binary
    destination = "${local.staging}/omlboot"
  }

  provisioner "file" {
    content     = local.config[each.key]
    destination = "${local.staging}/config.yaml"
  }

  provisioner "file" {
    source      = "${path.module}/omlboot-remote.sh"
    destination = "${local.staging}/omlboot-remote.sh"
  }

  # The script's exit code is omlboot's (see omlboot-remote.sh); non-zero fails this resource,
  # and Terraform marks it tainted so the next apply runs it again.
  provisioner "remote-exec" {
    inline = ["${local.sudo}sh ${local.staging}/omlboot-remote.sh ${local.staging} ${var.command} ${var.fail_on_degraded}"]
  }
}
