variable "targets" {
  description = <<-EOT
    Hosts to provision, by role: either { aio = {...} } or { data = {...}, voice = {...}, app = {...} }.
    address: where SSH reaches the host. private_ip: its private IPv4 (required for a cluster: it
    becomes data_host / voice_host / application_host on every host).
  EOT
  type = map(object({
    address    = string
    private_ip = optional(string, "")
  }))

  validation {
    condition     = contains(["aio", "app,data,voice"], join(",", sort(keys(var.targets))))
    error_message = "targets must have the key aio, or the keys data, voice and app."
  }

  validation {
    condition     = alltrue([for role, t in var.targets : role == "aio" || can(cidrhost("${t.private_ip}/32", 0))])
    error_message = "Every cluster target needs private_ip, an IPv4 address."
  }
}

variable "ssh_user" {
  description = "SSH user; if not root it needs passwordless sudo (cloud images' default user has it)."
  type        = string
}

variable "ssh_port" {
  description = "SSH port."
  type        = number
  default     = 22
}

variable "ssh_private_key_file" {
  description = "Path of the SSH private key."
  type        = string
}

variable "omlboot_binary" {
  description = "Path of the static omlboot binary on this machine (e.g. target/x86_64-unknown-linux-musl/release/omlboot)."
  type        = string
}

variable "command" {
  description = "apply: converge now, every time this resource is replaced. run: only once per instance."
  type        = string
  default     = "apply"

  validation {
    condition     = contains(["apply", "run"], var.command)
    error_message = "command must be apply or run."
  }
}

variable "fail_on_degraded" {
  description = "Fail the provisioner when omlboot exits 3 (degraded: only a monitoring component failed)."
  type        = bool
  default     = false
}

variable "infra_env" {
  description = "omlboot infra_env (cloud, lan, nat, hybrid, all), or empty to let omlboot detect it."
  type        = string
  default     = ""
}

variable "tenant_id" {
  description = "omlboot tenant_id."
  type        = string
  default     = "omnileads"
}

variable "tz" {
  description = "omlboot TZ: IANA time zone of the hosts and containers."
  type        = string
  default     = "UTC"
}

# Shared secrets. No defaults: pass them with -var, a *.tfvars file kept out of version control, or
# TF_VAR_postgres_password etc. They end up in /etc/omlboot/config.yaml (0600) and the Terraform state.
variable "postgres_password" {
  description = "omlboot postgres_password (8+ characters)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.postgres_password) >= 8 && !can(regex("[\r\n]", var.postgres_password))
    error_message = "postgres_password must be 8 or more characters on one line."
  }
}

variable "ami_password" {
  description = "omlboot ami_password (8+ characters)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.ami_password) >= 8 && !can(regex("[\r\n]", var.ami_password))
    error_message = "ami_password must be 8 or more characters on one line."
  }
}

variable "s3_http_admin_pass" {
  description = "omlboot s3_http_admin_pass, the MinIO root password (8+ characters)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.s3_http_admin_pass) >= 8 && !can(regex("[\r\n]", var.s3_http_admin_pass))
    error_message = "s3_http_admin_pass must be 8 or more characters on one line."
  }
}

variable "bucket_secret_key" {
  description = "omlboot bucket_secret_key (8+ characters)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.bucket_secret_key) >= 8 && !can(regex("[\r\n]", var.bucket_secret_key))
    error_message = "bucket_secret_key must be 8 or more characters on one line."
  }
}
