//! Which cloud (if any) this host runs on, decided from local evidence only.
//! Owned by the metadata work: see `identify`.
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Aws,
    Gcp,
    Azure,
    DigitalOcean,
    Oracle,
    Hetzner,
    Unknown,
}

/// Decide the platform from cloud-init's instance data (`v1.cloud_name`, `v1.platform`) or DMI,
/// as ds-identify does. Returns the platform and a short description of the evidence.
pub fn identify(_root: &Path, _instance_data: Option<&serde_json::Value>) -> (Platform, String) {
    (Platform::Unknown, "no evidence".into())
}
