//! NICs, their IPv4 addresses and the default route.
//!
//! On the live root the kernel is asked directly (getifaddrs); a fixture root is read from its
//! /proc/net/fib_trie and /proc/net/route, which hold the same facts in text form.
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addr {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    pub name: String,
    pub ipv4: Vec<Addr>,
    /// operstate is "up" (or unknown, as for some virtual NICs).
    pub up: bool,
    /// No backing device: bridges, veths, podman0 and the like.
    #[serde(rename = "virtual")]
    pub is_virtual: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetInfo {
    pub nics: Vec<Nic>,
    pub default_route_nic: Option<String>,
}

impl NetInfo {
    pub fn nic(&self, name: &str) -> Option<&Nic> {
        self.nics.iter().find(|n| n.name == name)
    }
    pub fn nic_with(&self, ip: Ipv4Addr) -> Option<&Nic> {
        self.nics
            .iter()
            .find(|n| n.ipv4.iter().any(|a| a.address == ip))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    iface: String,
    dest: Ipv4Addr,
    gateway: Ipv4Addr,
    mask: Ipv4Addr,
    metric: u32,
}

fn hex_ip(s: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints the network-order word as a host-order integer.
    u32::from_str_radix(s, 16)
        .ok()
        .map(|x| Ipv4Addr::from(x.to_le_bytes()))
}

fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            Some(Route {
                iface: f[0].to_string(),
                dest: hex_ip(f[1])?,
                gateway: hex_ip(f[2])?,
                metric: f[6].parse().ok()?,
                mask: hex_ip(f[7])?,
            })
        })
        .collect()
}

/// The NIC of the lowest-metric default route.
fn default_route(routes: &[Route]) -> Option<String> {
    routes
        .iter()
        .filter(|r| r.dest.is_unspecified() && r.mask.is_unspecified())
        .min_by_key(|r| r.metric)
        .map(|r| r.iface.clone())
}

/// Local IPv4 addresses from fib_trie: leaf lines followed by "/32 host LOCAL".
fn parse_fib_trie_locals(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut current: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(ip) = t.parse::<Ipv4Addr>() {
            current = Some(ip);
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = current {
                if !ip.is_loopback() && !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

fn prefix_of(mask: Ipv4Addr) -> u8 {
    u32::from(mask).count_ones() as u8
}

/// Give each local address to the NIC whose connected route holds it (longest mask wins); an
/// address no connected route holds (a /32 lease, as on GCP) goes to the default-route NIC.
fn assign(
    locals: &[Ipv4Addr],
    routes: &[Route],
    default_nic: Option<&str>,
) -> BTreeMap<String, Vec<Addr>> {
    let mut by_nic: BTreeMap<String, Vec<Addr>> = BTreeMap::new();
    for ip in locals {
        let best = routes
            .iter()
            .filter(|r| r.gateway.is_unspecified() && !r.mask.is_unspecified())
            .filter(|r| u32::from(*ip) & u32::from(r.mask) == u32::from(r.dest))
            .max_by_key(|r| prefix_of(r.mask));
        let (nic, prefix) = match (best, default_nic) {
            (Some(r), _) => (r.iface.clone(), prefix_of(r.mask)),
            (None, Some(d)) => (d.to_string(), 32),
            (None, None) => continue,
        };
        by_nic.entry(nic).or_default().push(Addr {
            address: *ip,
            prefix,
        });
    }
    by_nic
}

fn live_addresses() -> BTreeMap<String, Vec<Addr>> {
    let mut by_nic: BTreeMap<String, Vec<Addr>> = BTreeMap::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return by_nic;
    };
    for ifa in addrs {
        let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let ip = sin.ip();
        if ip.is_loopback() {
            continue;
        }
        let prefix = ifa
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map(|m| prefix_of(m.ip()))
            .unwrap_or(32);
        by_nic
            .entry(ifa.interface_name.clone())
            .or_default()
            .push(Addr {
                address: ip,
                prefix,
            });
    }
    by_nic
}

pub fn read(root: &Path) -> NetInfo {
    let routes = std::fs::read_to_string(root.join("proc/net/route"))
        .map(|t| parse_routes(&t))
        .unwrap_or_default();
    let default_route_nic = default_route(&routes);
    let mut addrs = if crate::target::Target::from_root(root).is_live() {
        live_addresses()
    } else {
        let locals = std::fs::read_to_string(root.join("proc/net/fib_trie"))
            .map(|t| parse_fib_trie_locals(&t))
            .unwrap_or_default();
        assign(&locals, &routes, default_route_nic.as_deref())
    };
    let mut names: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.extend(addrs.keys().cloned());
    names.sort();
    names.dedup();
    let nics = names
        .into_iter()
        .filter(|n| n != "lo")
        .map(|name| {
            let dir = root.join("sys/class/net").join(&name);
            let state = std::fs::read_to_string(dir.join("operstate")).unwrap_or_default();
            Nic {
                ipv4: addrs.remove(&name).unwrap_or_default(),
                up: matches!(state.trim(), "up" | "unknown" | ""),
                is_virtual: dir.exists() && !dir.join("device").exists(),
                name,
            }
        })
        .collect();
    NetInfo {
        nics,
        default_route_nic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
enp0s1\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
enp0s1\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
podman0\t0058A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn routes_and_default() {
        let r = parse_routes(ROUTE);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].dest, Ipv4Addr::new(10, 0, 2, 0));
        assert_eq!(r[0].gateway, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(default_route(&r).as_deref(), Some("enp0s1"));
    }

    #[test]
    fn fib_trie_and_assignment() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.2.0/24 2 0 2\n        |-- 10.0.2.15\n           /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 192.168.88.1\n        /32 host LOCAL\n     |-- 34.1.2.3\n        /32 host LOCAL\nLocal:\n     |-- 10.0.2.15\n        /32 host LOCAL\n";
        let locals = parse_fib_trie_locals(trie);
        assert_eq!(
            locals,
            vec![
                Ipv4Addr::new(10, 0, 2, 15),
                Ipv4Addr::new(192, 168, 88, 1),
                Ipv4Addr::new(34, 1, 2, 3)
            ]
        );
        let m = assign(&locals, &parse_routes(ROUTE), Some("enp0s1"));
        assert_eq!(
            m["enp0s1"],
            vec![
                Addr {
                    address: Ipv4Addr::new(10, 0, 2, 15),
                    prefix: 24
                },
                Addr {
                    address: Ipv4Addr::new(34, 1, 2, 3),
                    prefix: 32
                }
            ]
        );
        assert_eq!(
            m["podman0"],
            vec![Addr {
                address: Ipv4Addr::new(192, 168, 88, 1),
                prefix: 24
            }]
        );
    }
}
