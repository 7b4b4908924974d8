variable "layout" {
  description = "aio: one all-in-one host. cluster: a data, a voice and an app host."
  type        = string
  default     = "aio"

  validation {
    condition     = contains(["aio", "cluster"], var.layout)
    error_message = "layout must be aio or cluster."
  }
}

variable "hosts" {
  description = "Cluster only: the fixed private IPv4 of the data, voice and app hosts (keys data, voice, app). Give the same addresses to your VMs' network ports."
  type        = map(string)
  default     = {}
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
# TF_VAR_postgres_password etc. They end up in the user-data and in the Terraform state.
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
