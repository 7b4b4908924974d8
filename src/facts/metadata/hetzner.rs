//! Hetzner Cloud server metadata service.
//!
//! Followed: coreos/afterburn `src/providers/hetzner/mod.rs` (base
//! `http://169.254.169.254/hetzner/v1/metadata`, key `public-ipv4` read as
//! `HETZNER_PUBLIC_IPV4`, no special header) and cloud-init `DataSourceHetzner.py` (same base).
//! Each metadata key is also served on its own as text, `/hetzner/v1/metadata/public-ipv4`
//! (Hetzner Cloud API docs, "Server Metadata"), which is what we read.
use super::{ip_outcome, join, Http, Outcome, Request};

pub const PUBLIC_IPV4_PATH: &str = "/hetzner/v1/metadata/public-ipv4";

pub async fn lookup(http: &Http, base: &str) -> Outcome {
    let url = join(base, PUBLIC_IPV4_PATH);
    let reply = http.send(&Request::get(&url, &[])).await;
    ip_outcome(&url, reply)
}

/// cloud-init's Hetzner datasource keeps only instance-id, hostname, network-config and keys
/// in `ds.meta_data`; `public-ipv4` is read too in case a version stores the full metadata.
pub fn from_instance_data(ds: &serde_json::Value) -> Option<(String, String)> {
    super::first_string(
        ds,
        &[&["meta_data", "public-ipv4"], &["meta_data", "public_ipv4"]],
    )
}
