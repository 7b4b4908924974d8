# User-data for omlboot built with the hashicorp/cloudinit provider: one MIME multi-part document per
# host, whose part is text/cloud-config (built in user-data.tf). Provider-neutral: pass `user_data`
# to any VM resource.
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

data "cloudinit_config" "host" {
  for_each = toset(local.roles)

  # Plain text; set both to true for clouds that want gzip+base64 (e.g. aws_instance.user_data_base64).
  gzip          = false
  base64_encode = false

  part {
    filename     = "omlboot.cfg"
    content_type = "text/cloud-config"
    content      = local.cloud_config[each.key]
  }

  lifecycle {
    precondition {
      condition     = var.layout == "aio" || alltrue([for r in ["data", "voice", "app"] : can(cidrhost("${var.hosts[r]}/32", 0))])
      error_message = "layout = \"cluster\" needs hosts = { data = IP, voice = IP, app = IP }."
    }
  }
}
