//! Public IPv4 discovery: cloud-init instance data, then the platform's metadata service, then echo services.
use super::metadata::{self, echo, oracle, Endpoints, Http, HttpPolicy, Outcome};
use super::platform::{self, Platform};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicIp {
    pub address: Ipv4Addr,
    /// e.g. "cloud-init", "metadata:aws", "echo:https://checkip.amazonaws.com"
    pub source: String,
}

/// Where cloud-init leaves what it learnt from the cloud (world-readable, secrets redacted).
pub const INSTANCE_DATA_PATH: &str = "run/cloud-init/instance-data.json";

/// cloud-init's `<root>/run/cloud-init/instance-data.json`, when present and valid JSON.
/// A host without cloud-init, or a half-written file, simply has no instance data.
pub fn read_instance_data(root: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(root.join(INSTANCE_DATA_PATH)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Find the public IPv4. `use_echo=false` skips the echo fallback (infra_env=lan was asked for,
/// or the host has no default route).
/// Never fails: problems become warnings, and `None` means no public IP was found.
///
/// `root` is unused today: everything read from disk arrives as `instance_data`; it stays in
/// the signature so a later source (a cached answer, say) reads the same fixture tree.
pub async fn discover(
    _root: &Path,
    instance_data: Option<&serde_json::Value>,
    platform: Platform,
    endpoints: &Endpoints,
    policy: &HttpPolicy,
    use_echo: bool,
) -> (Option<PublicIp>, Vec<String>) {
    let mut warnings = Vec::new();
    // "No public IP here" answers: normal on a NATed host, so only told when nothing is found.
    let mut absent = Vec::new();

    if let Some(ip) = from_cloud_init(instance_data, platform, &mut warnings) {
        return (Some(ip), warnings);
    }

    if platform == Platform::Oracle {
        absent.push(oracle::NO_PUBLIC_IP.to_string());
    }
    // Built only when there is something to ask: an unknown platform costs no I/O at all.
    if metadata::has_public_ip_service(platform) {
        match Http::for_metadata(policy) {
            Ok(http) => match metadata::lookup(platform, endpoints, &http).await {
                Some(Outcome::Found(address)) => {
                    let source = format!("metadata:{platform}");
                    return (Some(PublicIp { address, source }), warnings);
                }
                Some(Outcome::Absent(why)) => absent.push(why),
                Some(Outcome::Failed(why)) => warnings.push(why),
                None => {}
            },
            Err(e) => warnings.push(e),
        }
    }

    if use_echo {
        if let Some(ip) = from_echo(endpoints, policy, &mut warnings).await {
            return (Some(ip), warnings);
        }
    }

    // On a cloud a public address is usually expected, so say why there is none. On an
    // unknown platform with echo off (a LAN install) having none is the plan: stay quiet.
    if platform != Platform::Unknown {
        let mut why = absent.join("; ");
        if !use_echo {
            if !why.is_empty() {
                why.push_str("; ");
            }
            why.push_str("echo services were not asked");
        }
        if !why.is_empty() {
            warnings.push(format!("no public IPv4 found on {platform}: {why}"));
        }
    }
    (None, warnings)
}

/// The address cloud-init recorded, used only when cloud-init's own verdict is the same cloud
/// as `platform`: another datasource's `ds` tree (NoCloud, ConfigDrive…) has other keys, and
/// reading it with this cloud's key paths would be guessing.
fn from_cloud_init(
    instance_data: Option<&serde_json::Value>,
    platform: Platform,
    warnings: &mut Vec<String>,
) -> Option<PublicIp> {
    let data = instance_data?;
    let (named, _) = platform::from_instance_data(data)?;
    if named != platform {
        return None;
    }
    match metadata::from_instance_data(platform, data)? {
        Ok((address, _path)) => Some(PublicIp {
            address,
            source: "cloud-init".into(),
        }),
        Err(warning) => {
            warnings.push(warning);
            None
        }
    }
}

async fn from_echo(
    endpoints: &Endpoints,
    policy: &HttpPolicy,
    warnings: &mut Vec<String>,
) -> Option<PublicIp> {
    if endpoints.echo.is_empty() {
        warnings.push("no echo services are configured to ask for the public IPv4".into());
        return None;
    }
    let http = match Http::for_echo(policy) {
        Ok(http) => http,
        Err(e) => {
            warnings.push(e);
            return None;
        }
    };
    let (found, misses) = echo::lookup(&http, &endpoints.echo).await;
    // From an echo service even "nothing here" is a fault: it exists to answer.
    warnings.extend(misses.into_iter().filter_map(|m| match m {
        Outcome::Absent(why) | Outcome::Failed(why) => Some(why),
        Outcome::Found(_) => None,
    }));
    found.map(|(address, url)| PublicIp {
        address,
        source: format!("echo:{url}"),
    })
}
