//! DigitalOcean droplet metadata service.
//!
//! Followed: coreos/afterburn `src/providers/digitalocean/mod.rs` reads `metadata/v1.json`
//! and takes `interfaces.public[i].ipv4.ip_address` as `DIGITALOCEAN_IPV4_PUBLIC_i`; the same
//! value is served as text at `metadata/v1/interfaces/public/0/ipv4/address` (DigitalOcean's
//! metadata API), which spares us parsing the whole document. The `anchor_ipv4` next to it is
//! a private 10.x address for floating IPs and is never the answer.
use super::{ip_outcome, join, Http, Outcome, Request};

pub const PUBLIC_IPV4_PATH: &str = "/metadata/v1/interfaces/public/0/ipv4/address";

pub async fn lookup(http: &Http, base: &str) -> Outcome {
    let url = join(base, PUBLIC_IPV4_PATH);
    let reply = http.send(&Request::get(&url, &[])).await;
    ip_outcome(&url, reply)
}

/// cloud-init's DigitalOcean datasource stores the whole `v1.json` as `ds.meta_data`
/// (cloud-init tests: `DO_META`, `interfaces.public[0].ipv4.ip_address`).
pub fn from_instance_data(ds: &serde_json::Value) -> Option<(String, String)> {
    let ip = ds
        .get("meta_data")?
        .get("interfaces")?
        .get("public")?
        .get(0)?
        .get("ipv4")?
        .get("ip_address")?
        .as_str()?
        .trim();
    (!ip.is_empty()).then(|| {
        (
            ip.to_string(),
            "ds.meta_data.interfaces.public[0].ipv4.ip_address".to_string(),
        )
    })
}
