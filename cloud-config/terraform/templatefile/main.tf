# OMniLeads on AWS, provisioned at first boot by omlboot from user-data rendered with templatefile().
#
# Order: network interfaces and Elastic IPs first, instances last. An interface's private IP and an
# EIP's public IP are known before any instance boots, so every host's user-data can carry the data,
# voice and app addresses (data_host, voice_host, application_host) and its own public IP.

locals {
  roles      = var.layout == "aio" ? ["aio"] : ["data", "voice", "app"]
  public_web = toset([for r in local.roles : r if r != "data"])
}

data "aws_subnet" "this" {
  id = var.subnet_id
}

# Every host: SSH from the admin networks, anything from the other hosts, any egress.
resource "aws_security_group" "internal" {
  name_prefix = "omnileads-internal-"
  vpc_id      = data.aws_subnet.this.vpc_id

  ingress {
    description = "SSH"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = var.admin_cidrs
  }

  ingress {
    description = "between the OMniLeads hosts"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# aio, voice and app: web UI + WebRTC, RTP, SIP trunks.
resource "aws_security_group" "public" {
  name_prefix = "omnileads-public-"
  vpc_id      = data.aws_subnet.this.vpc_id

  ingress {
    description = "nginx: web UI and WebRTC (WSS)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  ingress {
    description = "RTPengine media"
    from_port   = 20000
    to_port     = 30000
    protocol    = "udp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  ingress {
    description = "Asterisk SIP trunks"
    from_port   = 5060
    to_port     = 5060
    protocol    = "udp"
    cidr_blocks = var.sip_trunk_cidrs
  }
}

resource "aws_network_interface" "host" {
  for_each = toset(local.roles)

  subnet_id = var.subnet_id
  # A fixed address when private_ips has one for this role; otherwise AWS picks one.
  private_ips = contains(keys(var.private_ips), each.key) ? [var.private_ips[each.key]] : null
  security_groups = concat(
    [aws_security_group.internal.id],
    contains(local.public_web, each.key) ? [aws_security_group.public.id] : [],
  )

  tags = { Name = "omnileads-${each.key}" }
}

# One public address per host: the public/NAT IP of aio, voice and app, and egress for image pulls.
# (To keep the data host off the Internet, drop its EIP and give the subnet a NAT gateway.)
resource "aws_eip" "host" {
  for_each = toset(local.roles)

  domain = "vpc"
  tags   = { Name = "omnileads-${each.key}" }
}

resource "aws_eip_association" "host" {
  for_each = toset(local.roles)

  allocation_id        = aws_eip.host[each.key].id
  network_interface_id = aws_network_interface.host[each.key].id
}

locals {
  private_ip = { for role, eni in aws_network_interface.host : role => eni.private_ip }

  user_data = {
    for role in local.roles : role => templatefile("${path.module}/user-data.yaml.tftpl", {
      role      = role
      tenant_id = var.tenant_id
      tz        = var.tz
      # AWS maps the EIP 1:1 onto the private address: a public IP on no NIC is omldeploytool's `nat`.
      infra_env   = "nat"
      nat_ip_addr = aws_eip.host[role].public_ip
      # Empty for aio (the template leaves the cluster keys out).
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

resource "aws_instance" "host" {
  for_each = toset(local.roles)

  ami           = var.ami_id
  instance_type = var.instance_types[each.key]
  key_name      = var.key_name
  user_data     = local.user_data[each.key]

  network_interface {
    network_interface_id = aws_network_interface.host[each.key].id
    device_index         = 0
  }

  root_block_device {
    volume_size = var.disk_gb
    volume_type = "gp3"
  }

  # IMDSv2 only, hop limit 1: the containers cannot read the instance metadata (user-data holds the
  # passwords); omlboot on the host speaks IMDSv2.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tags = { Name = "omnileads-${each.key}", Role = each.key }

  # The public address is in place before first boot, so image pulls have egress.
  depends_on = [aws_eip_association.host]
}
