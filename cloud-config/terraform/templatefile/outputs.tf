output "private_ips" {
  description = "Private IPv4 per role."
  value       = local.private_ip
}

output "public_ips" {
  description = "Public IPv4 (Elastic IP) per role."
  value       = { for role, eip in aws_eip.host : role => eip.public_ip }
}

output "web_url" {
  description = "OMniLeads web UI."
  value       = "https://${aws_eip.host[var.layout == "aio" ? "aio" : "app"].public_ip}"
}

output "user_data" {
  description = "Rendered user-data per role (holds the passwords)."
  value       = local.user_data
  sensitive   = true
}
