//! What the host is: OS, network, public address, resources. Read through a root path so tests use fixtures.
pub mod metadata;
pub mod net;
pub mod os;
pub mod platform;
pub mod public_ip;
pub mod resources;

use crate::config::{key, Config, Origin};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub os: os::OsInfo,
    pub podman_version: Option<String>,
    pub systemd_version: Option<String>,
    pub nics: Vec<net::Nic>,
    pub default_route_nic: Option<String>,
    /// The NIC holding `private_ip`.
    pub nic: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    /// config (omni_ip_lan), config-derived (cluster host address), omni_nic, default_route or first_nic.
    pub private_ip_source: Option<String>,
    pub platform: platform::Platform,
    pub platform_evidence: String,
    pub public_ip: Option<Ipv4Addr>,
    pub public_ip_source: Option<String>,
    /// The public IP is configured on one of this host's NICs.
    pub public_ip_on_nic: bool,
    pub infra_env: String,
    /// "config" or "detected".
    pub infra_env_source: String,
    pub resources: resources::Resources,
    pub warnings: Vec<String>,
}

/// Endpoints and timeouts for metadata/echo calls, from the config (tests point them at 127.0.0.1).
pub fn http_settings(cfg: &Config) -> (metadata::Endpoints, metadata::HttpPolicy) {
    // Every one of these keys has a schema default, so the typed values are always set.
    let s = cfg.settings();
    let endpoints = metadata::Endpoints {
        aws: s.metadata_url_aws,
        gcp: s.metadata_url_gcp,
        azure: s.metadata_url_azure,
        digitalocean: s.metadata_url_digitalocean,
        oracle: s.metadata_url_oracle,
        hetzner: s.metadata_url_hetzner,
        echo: s.public_ip_echo_urls,
    };
    let policy = metadata::HttpPolicy {
        connect_timeout: Duration::from_millis(s.metadata_connect_timeout_ms),
        total_timeout: Duration::from_millis(s.metadata_timeout_ms),
        retries: s.metadata_retries as u32,
        backoff: metadata::HttpPolicy::default().backoff,
    };
    (endpoints, policy)
}

/// Choose the private IP: explicit omni_ip_lan > omni_nic > default-route NIC > first NIC with an address.
fn choose_private(
    cfg: &Config,
    net: &net::NetInfo,
    warnings: &mut Vec<String>,
) -> (Option<Ipv4Addr>, Option<String>, Option<String>) {
    let first_v4 = |n: &net::Nic| n.ipv4.first().map(|a| a.address);
    let s = cfg.settings();
    if let Some(ip) = s.omni_ip_lan.and_then(|s| s.parse::<Ipv4Addr>().ok()) {
        let source = match cfg.origin(key::omni_ip_lan) {
            Some(Origin::Derived(k)) => format!("config ({k})"),
            _ => "config".to_string(),
        };
        let nic = net.nic_with(ip).map(|n| n.name.clone());
        if nic.is_none() {
            warnings.push(format!(
                "omni_ip_lan {ip} is not configured on any NIC of this host"
            ));
        }
        return (Some(ip), nic, Some(source));
    }
    if let Some(name) = s.omni_nic.as_deref() {
        match net.nic(name) {
            Some(n) => match first_v4(n) {
                Some(ip) => return (Some(ip), Some(name.to_string()), Some("omni_nic".into())),
                None => warnings.push(format!("omni_nic {name} has no IPv4 address")),
            },
            None => warnings.push(format!("omni_nic {name} does not exist on this host")),
        }
        return (None, Some(name.to_string()), None);
    }
    if let Some(n) = net.default_route_nic.as_deref().and_then(|d| net.nic(d)) {
        if let Some(ip) = first_v4(n) {
            return (Some(ip), Some(n.name.clone()), Some("default_route".into()));
        }
    }
    if let Some(n) = net
        .nics
        .iter()
        .find(|n| !n.is_virtual && n.up && !n.ipv4.is_empty())
    {
        warnings.push(format!(
            "no default route: using the first NIC with an address, {}",
            n.name
        ));
        return (first_v4(n), Some(n.name.clone()), Some("first_nic".into()));
    }
    warnings.push("no private IPv4 found: set omni_ip_lan or omni_nic".into());
    (None, None, None)
}

/// Whether a public-IP lookup is needed: not when the config already says everything.
fn public_ip_needed(cfg: &Config) -> bool {
    let s = cfg.settings();
    match s.infra_env.as_deref() {
        Some("lan") | Some("all") => false,
        _ => s.nat_ip_addr.is_none(),
    }
}

pub async fn gather(root: &Path, cfg: &Config) -> Facts {
    let mut warnings = Vec::new();
    let s = cfg.settings();
    let os = os::read(root);
    let net = net::read(root);
    let (private_ip, nic, private_ip_source) = choose_private(cfg, &net, &mut warnings);

    let instance_data = public_ip::read_instance_data(root);
    let (platform, platform_evidence) = platform::identify(root, instance_data.as_ref());

    let (mut public_ip, mut public_ip_source) = (None, None);
    if let Some(ip) = s
        .nat_ip_addr
        .as_ref()
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
    {
        public_ip = Some(ip);
        public_ip_source = Some("config (nat_ip_addr)".to_string());
    } else if public_ip_needed(cfg) {
        let (endpoints, policy) = http_settings(cfg);
        // Without a default route no echo service can be reached: asking them only costs
        // timeouts (a LAN host with DHCP and no way out paid 23 s for nothing).
        let use_echo = s.infra_env.as_deref() != Some("lan") && net.default_route_nic.is_some();
        let (found, w) = public_ip::discover(
            root,
            instance_data.as_ref(),
            platform,
            &endpoints,
            &policy,
            use_echo,
        )
        .await;
        warnings.extend(w);
        if let Some(p) = found {
            public_ip = Some(p.address);
            public_ip_source = Some(p.source);
        }
    }
    let public_ip_on_nic = public_ip.is_some_and(|ip| net.nic_with(ip).is_some());

    let (infra_env, infra_env_source) = match &s.infra_env {
        Some(e) => (e.clone(), "config".to_string()),
        None => {
            let e = match (public_ip, public_ip_on_nic) {
                (Some(_), true) => "cloud",
                (Some(_), false) => "nat",
                (None, _) => "lan",
            };
            (e.to_string(), "detected".to_string())
        }
    };

    let resources = resources::read(root);
    let live = crate::target::Target::from_root(root).is_live();
    if live || resources.memory_mib > 0 {
        warnings.extend(
            resources::warnings(&resources, cfg.role())
                .into_iter()
                .filter(|w| live || !w.contains("GiB free")),
        );
    }

    Facts {
        podman_version: os::tool_version(root, "podman", "--version"),
        systemd_version: os::tool_version(root, "systemctl", "--version"),
        os,
        default_route_nic: net.default_route_nic.clone(),
        nics: net.nics,
        nic,
        private_ip,
        private_ip_source,
        platform,
        platform_evidence,
        public_ip,
        public_ip_source,
        public_ip_on_nic,
        infra_env,
        infra_env_source,
        resources,
        warnings,
    }
}

impl Facts {
    /// Facts for `plan`/`render` when the config already fixes every address: no host or network reads
    /// beyond what is cheap and local, so the output depends only on config and catalog.
    pub fn from_config_only(cfg: &Config) -> Option<Facts> {
        let s = cfg.settings();
        let ip = s.omni_ip_lan?.parse::<Ipv4Addr>().ok()?;
        let infra_env = s.infra_env?;
        let nat = s.nat_ip_addr.and_then(|s| s.parse::<Ipv4Addr>().ok());
        if matches!(infra_env.as_str(), "cloud" | "nat") && nat.is_none() {
            return None;
        }
        Some(Facts {
            os: os::parse_os_release(""),
            podman_version: None,
            systemd_version: None,
            nics: Vec::new(),
            default_route_nic: None,
            nic: s.omni_nic,
            private_ip: Some(ip),
            private_ip_source: Some("config".into()),
            platform: platform::Platform::Unknown,
            platform_evidence: "not detected: the config fixes every address".into(),
            public_ip: nat,
            public_ip_source: nat.map(|_| "config (nat_ip_addr)".into()),
            public_ip_on_nic: false,
            infra_env,
            infra_env_source: "config".into(),
            resources: resources::Resources::default(),
            warnings: Vec::new(),
        })
    }
}
