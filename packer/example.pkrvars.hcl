# Example variables for packer/omlboot.pkr.hcl: an all-in-one OMniLeads image from Debian's genericcloud image.
#   packer/bake.sh -var-file=packer/example.pkrvars.hcl -var omlboot_binary=target/x86_64-unknown-linux-musl/release/omlboot
# Not loaded automatically (only *.auto.pkrvars.hcl files are).

base_image          = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
base_image_checksum = "file:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS"
omlboot_binary      = "target/x86_64-unknown-linux-musl/release/omlboot"
role                = "aio"
disk_size           = "30G"

# Pin the images the image is baked with (omldeploytool *_img names). Keys left out take omlboot's defaults;
# the first boot's config must name the same references, or omlboot pulls the ones it lacks.
images = {
  omnileads_img = "docker.io/omnileads/omlapp:241121.01"
  nginx_img     = "docker.io/omnileads/nginx:241009.01"
  asterisk_img  = "docker.io/omnileads/asterisk:240920.01"
  kamailio_img  = "docker.io/omnileads/kamailio:240625.01"
}
