//! Azure Instance Metadata Service (IMDS).
//!
//! Followed: Azure's IMDS documentation ("Retrieve public IP address":
//! `metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?...&format=text`
//! with header `Metadata: true`, no proxy), and kubernetes-sigs/cloud-provider-azure
//! `pkg/provider/azure_instance_metadata.go`: that field is filled only for Basic-SKU public
//! IPs (MicrosoftDocs/azure-docs#44314) and answers an empty string for Standard-SKU ones, so
//! when it is empty they read `metadata/loadbalancer` and take `publicIpAddresses[].
//! frontendIpAddress`. We do the same.
use super::{ip_outcome, join, parse_public_ipv4, snippet, Http, Outcome, Reply, Request};

pub const PUBLIC_IP_PATH: &str = "/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text";
pub const LOADBALANCER_PATH: &str = "/metadata/loadbalancer?api-version=2020-10-01&format=json";
pub const METADATA_HEADER: (&str, &str) = ("metadata", "true");

pub async fn lookup(http: &Http, base: &str) -> Outcome {
    let url = join(base, PUBLIC_IP_PATH);
    let reply = http.send(&Request::get(&url, &[METADATA_HEADER])).await;
    match ip_outcome(&url, reply) {
        Outcome::Absent(first) => match from_loadbalancer(http, base).await {
            Outcome::Absent(second) => Outcome::Absent(format!("{first}; {second}")),
            other => other,
        },
        other => other,
    }
}

/// The Standard-SKU path. This document is absent (404, or 400 on some hosts) when the VM is
/// in no Standard load balancer's pool, which is "no public IP here", not a fault.
async fn from_loadbalancer(http: &Http, base: &str) -> Outcome {
    let url = join(base, LOADBALANCER_PATH);
    match http.send(&Request::get(&url, &[METADATA_HEADER])).await {
        Reply::Body(body) => parse_loadbalancer(&url, &body),
        Reply::NotFound => Outcome::Absent(format!("{url} answered 404: no load balancer")),
        Reply::Status(s) if s.is_client_error() => {
            Outcome::Absent(format!("{url} answered HTTP {s}: no load balancer"))
        }
        other => ip_outcome(&url, other),
    }
}

fn parse_loadbalancer(url: &str, body: &str) -> Outcome {
    let doc: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            return Outcome::Failed(format!(
                "{url} answered {}, which is not JSON; ignored",
                snippet(body.trim())
            ))
        }
    };
    let entries = doc
        .pointer("/loadbalancer/publicIpAddresses")
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    // IPv6 entries come bracketed and fail the IPv4 parse; the first public IPv4 is ours (a
    // single-NIC VM, as OMniLeads hosts are, has one instance-level public address).
    let found = entries.iter().find_map(|e| {
        let ip = e.get("frontendIpAddress")?.as_str()?;
        parse_public_ipv4(ip).ok()
    });
    match found {
        Some(ip) => Outcome::Found(ip),
        None => Outcome::Absent(format!("{url} lists no public IPv4")),
    }
}

/// cloud-init's Azure datasource stores the IMDS instance document as `ds.meta_data.imds`
/// (`crawled_data["metadata"]["imds"]`); the address sits at
/// `network.interface[i].ipv4.ipAddress[j].publicIpAddress`, empty for Standard SKU.
pub fn from_instance_data(ds: &serde_json::Value) -> Option<(String, String)> {
    let interfaces = ds
        .pointer("/meta_data/imds/network/interface")?
        .as_array()?;
    interfaces.iter().enumerate().find_map(|(i, nic)| {
        let addrs = nic.pointer("/ipv4/ipAddress")?.as_array()?;
        addrs.iter().enumerate().find_map(|(j, a)| {
            let ip = a.get("publicIpAddress")?.as_str()?.trim();
            (!ip.is_empty()).then(|| {
                (
                    ip.to_string(),
                    format!(
                        "ds.meta_data.imds.network.interface[{i}].ipv4.ipAddress[{j}].publicIpAddress"
                    ),
                )
            })
        })
    })
}
