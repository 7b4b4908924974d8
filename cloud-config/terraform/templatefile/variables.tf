variable "region" {
  description = "AWS region, e.g. us-east-1."
  type        = string
}

variable "layout" {
  description = "aio: one all-in-one host. cluster: a data, a voice and an app host."
  type        = string
  default     = "aio"

  validation {
    condition     = contains(["aio", "cluster"], var.layout)
    error_message = "layout must be aio or cluster."
  }
}

variable "ami_id" {
  description = "Debian 12 / Ubuntu 22.04+ / RHEL-family 9 image that has /usr/local/bin/omlboot (baked with `omlboot bake`, e.g. by packer/)."
  type        = string
}

variable "subnet_id" {
  description = "Subnet for every host. It needs a route to the Internet (images are pulled at first boot)."
  type        = string
}

variable "private_ips" {
  description = "Fixed private IPv4 per role (keys: aio, data, voice, app). A role left out gets an address from the subnet."
  type        = map(string)
  default     = {}
}

variable "instance_types" {
  description = "EC2 instance type per role."
  type        = map(string)
  default = {
    aio   = "t3.xlarge"
    data  = "t3.large"
    voice = "t3.large"
    app   = "t3.xlarge"
  }
}

variable "disk_gb" {
  description = "Root disk size, GB."
  type        = number
  default     = 50
}

variable "key_name" {
  description = "EC2 key pair for SSH, or null for none."
  type        = string
  default     = null
}

variable "admin_cidrs" {
  description = "Networks allowed to SSH (22/tcp)."
  type        = list(string)
  default     = []
}

variable "sip_trunk_cidrs" {
  description = "Your SIP providers' networks, allowed to 5060/udp."
  type        = list(string)
  default     = []
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

# The cluster's shared secrets. No defaults: pass them with -var, a *.tfvars file kept out of version
# control, or TF_VAR_postgres_password etc. They end up in the instances' user-data and in the
# Terraform state: protect both.
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
