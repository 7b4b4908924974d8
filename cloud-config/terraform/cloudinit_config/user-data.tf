# The cloud-config document of each host, without any provider: main.tf wraps it in a
# cloudinit_config part, and .ci/integrations.sh evaluates it offline with `terraform console`.

locals {
  roles = var.layout == "aio" ? ["aio"] : ["data", "voice", "app"]

  # omlboot's config per role: omldeploytool inventory names, values jsonencode()d.
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

  # yamlencode() quotes whatever needs quoting; the config is one YAML string inside it.
  cloud_config = {
    for role in local.roles : role => join("\n", ["#cloud-config", yamlencode({
      write_files = [{
        path        = "/etc/omlboot/config.yaml"
        owner       = "root:root"
        permissions = "0600"
        content     = local.config[role]
      }]
      # Once per instance; harmless on an image baked with `omlboot bake`, whose
      # omlboot-firstboot.service runs the same command under the same lock.
      runcmd = [["/usr/local/bin/omlboot", "run"]]
    })])
  }
}
