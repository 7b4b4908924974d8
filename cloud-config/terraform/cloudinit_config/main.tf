# User-data for omlboot built with the hashicorp/cloudinit provider: one MIME multi-part document per
# host, whose part is text/cloud-config. Provider-neutral: pass `user_data` to any VM resource.
#
# As a module:
#   module "omlboot_user_data" {
#     source            = "./cloudinit_config"
#     layout            = "cluster"
#     hosts             = { data = "10.10.10.11", voice = "10.10.10.12", app = "10.10.10.13" }
#     infra_env         = "lan"
#     postgres_password = var.postgres_password
#     ...
#   }
#   resource "libvirt_cloudinit_disk" "app" {
#     name      = "omnileads-app-seed.iso"
#     user_data = module.omlboot_user_data.user_data["app"]
#   }

locals {
  roles = var.layout == "aio" ? ["aio"] : ["data", "voice", "app"]

  config = {
    for role in local.roles : role => templatefile("${path.module}/config.yaml.tftpl", {
      role               = role
      tenant_id          = var.tenant_id
      tz                 = var.tz
      infra_env          = var.infra_env
      data_host          = lookup(var.hosts, "data", "")
      voice_host         = lookup(var.hosts, "voice", "")
      application_host   = lookup(var.hosts, "app", "")
      postgres_password  = var.postgres_password
      ami_password       = var.ami_password
      s3_http_admin_pass = var.s3_http_admin_pass
      bucket_secret_key  = var.bucket_secret_key
    })
  }
}

data "cloudinit_config" "host" {
  for_each = toset(local.roles)

  # Plain text; set both to true for clouds that want gzip+base64 (e.g. aws_instance.user_data_base64).
  gzip          = false
  base64_encode = false

  part {
    filename     = "omlboot.cfg"
    content_type = "text/cloud-config"
    # yamlencode() quotes whatever needs quoting; the config is one YAML string inside it.
    content = join("\n", ["#cloud-config", yamlencode({
      write_files = [{
        path        = "/etc/omlboot/config.yaml"
        owner       = "root:root"
        permissions = "0600"
        content     = local.config[each.key]
      }]
      # Once per instance; harmless on an image baked with `omlboot bake`, whose
      # omlboot-firstboot.service runs the same command under the same lock.
      runcmd = [["/usr/local/bin/omlboot", "run"]]
    })])
  }

  lifecycle {
    precondition {
      condition     = var.layout == "aio" || alltrue([for r in ["data", "voice", "app"] : can(cidrhost("${var.hosts[r]}/32", 0))])
      error_message = "layout = \"cluster\" needs hosts = { data = IP, voice = IP, app = IP }."
    }
  }
}
