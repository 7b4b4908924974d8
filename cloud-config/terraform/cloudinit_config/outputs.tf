output "user_data" {
  description = "cloud-init user-data per role (MIME multi-part; holds the passwords)."
  value       = { for role, doc in data.cloudinit_config.host : role => doc.rendered }
  sensitive   = true
}

output "config" {
  description = "The omlboot config per role, as written to /etc/omlboot/config.yaml."
  value       = local.config
  sensitive   = true
}
