output "provisioned" {
  description = "Roles provisioned, with the SSH address of each."
  value       = { for role, t in var.targets : role => t.address }
}
