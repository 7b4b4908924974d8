# Bakes an OMniLeads host image with `omlboot bake`: boots a Debian 12 cloud image under QEMU, uploads omlboot
# (and optionally a config file and an offline image bundle), runs `omlboot bake --role <role>`, and writes a
# qcow2. A VM cloned from it provisions at first boot with no package install and no image pull.
#
# Run it through packer/bake.sh (it makes the throwaway SSH key and the NoCloud seed this template logs in with):
#   packer/bake.sh -var-file=packer/example.pkrvars.hcl
# See packer/README.md. Valid for Debian 12's packer 1.6.6 (qemu builder built in) and for packer >= 1.7 with the
# qemu plugin installed (packer/plugins.pkr.hcl.example).
#
# Network: SSH is forwarded from 127.0.0.1 only, VNC listens on 127.0.0.1 only, and no HTTP server is started.

# ---- what to bake ----

variable "base_image" {
  type        = string
  description = "Debian 12 cloud image (qcow2 or raw): a local path or a URL, e.g. debian-12-genericcloud-amd64.qcow2."
}

variable "base_image_checksum" {
  type        = string
  description = "Checksum of base_image as packer takes it: \"sha512:...\", \"file:<url of SHA512SUMS>\", or \"none\"."
}

variable "omlboot_binary" {
  type        = string
  description = "Path of the (static) omlboot executable to bake in."
}

variable "role" {
  type        = string
  default     = "aio"
  description = "omlboot role: aio, data, voice or app."
}

variable "images" {
  type        = map(string)
  default     = {}
  description = "Image references by config key (omldeploytool *_img names), each passed as --set KEY=VALUE. Keys left out use omlboot's defaults."
}

variable "settings" {
  type        = map(string)
  default     = {}
  description = "More config keys for bake, each passed as --set KEY=VALUE (e.g. skip_packages = \"true\")."
}

variable "config_file" {
  type        = string
  default     = ""
  description = "Optional omlboot config (YAML) uploaded and passed as --config. Only role and image keys matter to bake."
}

variable "image_bundle" {
  type        = string
  default     = ""
  description = "Optional offline bundle (tar of OCI archives) uploaded and loaded instead of pulling (--set image_bundle=...)."
}

# ---- how to log in (packer/bake.sh fills these) ----

variable "seed_files" {
  type        = list(string)
  description = "NoCloud seed for the build VM (user-data, meta-data), put on a CD labelled cidata. It must create ssh_username with passwordless sudo and the public key of ssh_private_key_file."
}

variable "ssh_username" {
  type    = string
  default = "packer"
}

variable "ssh_private_key_file" {
  type = string
}

variable "ssh_timeout" {
  type        = string
  default     = "30m"
  description = "How long to wait for the VM's SSH (first boot of the base image, with cloud-init)."
}

variable "remove_build_user" {
  type        = bool
  default     = true
  description = "Delete ssh_username and its sudoers entry before shutdown, so the image keeps no build login."
}

# ---- the build VM ----

variable "output_directory" {
  type    = string
  default = "output-omlboot"
}

variable "vm_name" {
  type        = string
  default     = ""
  description = "File name of the qcow2 in output_directory (default omlboot-<role>.qcow2)."
}

variable "disk_size" {
  type        = string
  default     = "20G"
  description = "Virtual size of the output disk (cloud-init grows the root partition on first boot). Not smaller than base_image."
}

variable "memory" {
  type    = number
  default = 4096
}

variable "cpus" {
  type    = number
  default = 2
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "kvm, or tcg where KVM is not available (much slower)."
}

variable "qemu_binary" {
  type    = string
  default = "qemu-system-x86_64"
}

variable "restrict_network" {
  type        = bool
  default     = false
  description = "QEMU user networking with restrict=on: the VM reaches nothing outside (images must then come from image_bundle or a registry inside the VM)."
}

variable "extra_qemuargs" {
  type        = list(list(string))
  default     = []
  description = "Extra QEMU arguments, e.g. [[\"-serial\", \"file:serial.log\"]]. Giving -drive here would drop packer's own disks: attach more disks with -blockdev + -device."
}

locals {
  vm_name    = var.vm_name != "" ? var.vm_name : "omlboot-${var.role}.qcow2"
  upload_dir = "/var/tmp/omlboot-bake"
  # The build VM's NIC. Overriding -netdev is what binds the SSH forward to 127.0.0.1 (packer's default listens on
  # every address); overriding -device means packer adds no NIC of its own, so the NIC is declared here too.
  netdev = join(",", compact([
    "user",
    "id=user.0",
    "hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22",
    var.restrict_network ? "restrict=on" : "",
  ]))
  qemuargs = concat([
    ["-netdev", local.netdev],
    ["-device", "virtio-net-pci,netdev=user.0"],
  ], var.extra_qemuargs)

  # Everything is uploaded in one go: the binary, then the optional config and bundle.
  uploads = concat([var.omlboot_binary], compact([var.config_file, var.image_bundle]))

  # Shell words for `omlboot bake`, each single-quoted. (No merge(): packer 1.6.6 panics on merging empty maps.)
  set_args = join(" ", concat(
    [for k, v in var.images : format("--set '%s'", replace("${k}=${v}", "'", "'\\''"))],
    [for k, v in var.settings : format("--set '%s'", replace("${k}=${v}", "'", "'\\''"))],
    compact([var.image_bundle != "" ? "--set 'image_bundle=${local.upload_dir}/${basename(var.image_bundle)}'" : ""]),
  ))
  config_args = var.config_file != "" ? format("--config '%s/%s'", local.upload_dir, basename(var.config_file)) : ""
  bake_cmd    = "${local.upload_dir}/${basename(var.omlboot_binary)} bake --role '${var.role}' ${local.config_args} ${local.set_args}"

  # Last thing before the image is closed: drop the build login, then power off.
  shutdown_command = var.remove_build_user ? "sudo -n sh -c 'rm -f /etc/sudoers.d/90-cloud-init-users; userdel --force --remove ${var.ssh_username}; poweroff'" : "sudo -n poweroff"
}

source "qemu" "omlboot" {
  iso_url          = var.base_image
  iso_checksum     = var.base_image_checksum
  disk_image       = true
  use_backing_file = false
  format           = "qcow2"
  disk_interface   = "virtio"
  disk_size        = var.disk_size
  output_directory = var.output_directory
  vm_name          = local.vm_name

  qemu_binary = var.qemu_binary
  accelerator = var.accelerator
  memory      = var.memory
  cpus        = var.cpus
  headless    = true
  qemuargs    = local.qemuargs

  # No HTTP server (http_directory unset); VNC only on loopback.
  vnc_bind_address = "127.0.0.1"

  cd_files = var.seed_files
  cd_label = "cidata"

  communicator         = "ssh"
  ssh_host             = "127.0.0.1"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.ssh_timeout

  boot_wait        = "1s"
  shutdown_command = local.shutdown_command
  shutdown_timeout = "10m"
}

build {
  sources = ["source.qemu.omlboot"]

  provisioner "shell" {
    inline = ["mkdir -p ${local.upload_dir}"]
  }

  provisioner "file" {
    sources     = local.uploads
    destination = "${local.upload_dir}/"
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo -n env {{ .Vars }} {{ .Path }}"
    inline = [
      "chmod 0755 ${local.upload_dir}/${basename(var.omlboot_binary)}",
      "echo \"omlboot-bake: machine-id before bake: $(cat /etc/machine-id)\"",
      "echo \"omlboot-bake: running: ${replace(local.bake_cmd, "\"", "\\\"")}\"",
      local.bake_cmd,
      "podman images --noheading --no-trunc | sed 's/^/omlboot-bake: image /'",
      "rm -rf ${local.upload_dir}",
      "echo \"omlboot-bake: done; /etc/machine-id is now '$(cat /etc/machine-id)'\"",
    ]
  }
}
