//! Google Compute Engine metadata server.
//!
//! Followed: coreos/afterburn `src/providers/gcp/mod.rs`, which reads
//! `computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip` as
//! `GCE_IP_EXTERNAL_0`, sends `Metadata-Flavor: Google` (the server refuses requests without
//! it) and treats 404 as "not set": an instance without an external IP has no access config.
use super::{ip_outcome, join, Http, Outcome, Request};

pub const EXTERNAL_IP_PATH: &str =
    "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip";
pub const FLAVOR_HEADER: (&str, &str) = ("metadata-flavor", "Google");

pub async fn lookup(http: &Http, base: &str) -> Outcome {
    let url = join(base, EXTERNAL_IP_PATH);
    let reply = http.send(&Request::get(&url, &[FLAVOR_HEADER])).await;
    ip_outcome(&url, reply)
}

/// Nothing to read: cloud-init's GCE datasource keeps only instance-id, zone, hostname and
/// attributes (`read_md`'s url_map), never the external IP.
pub fn from_instance_data(_ds: &serde_json::Value) -> Option<(String, String)> {
    None
}
