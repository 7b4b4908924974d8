//! NoCloud seed (ISO 9660, label `cidata`): user-data, meta-data and network-config.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// What cloud-init gets as user-data.
#[derive(Debug, Clone)]
pub enum UserData {
    /// Passed through unchanged (a `#cloud-config` document, a script, or a MIME multipart).
    Raw(String),
    /// Several parts combined into one MIME multipart document; cloud-init merges the cloud-config parts in order.
    /// Use [`UserData::with_overrides`] to layer test overrides on a project file.
    Parts(Vec<Part>),
}

#[derive(Debug, Clone)]
pub struct Part {
    pub content_type: String,
    pub filename: String,
    pub body: String,
}

/// Merge rule put on override parts: later dicts are merged recursively into earlier ones and lists are appended,
/// so an override can add runcmd/write_files entries without dropping the project's own.
pub const MERGE_APPEND: &str = "merge_how:\n  - name: list\n    settings: [append]\n  - name: dict\n    settings: [no_replace, recurse_list]\n";

impl UserData {
    pub fn cloud_config(body: &str) -> Self {
        UserData::Raw(body.to_string())
    }

    /// A project file (e.g. cloud-config/aio.yaml, read as it is) plus test overrides (cloud-config documents).
    /// The overrides get [`MERGE_APPEND`] unless they carry their own `merge_how`.
    pub fn with_overrides(base: &str, overrides: &[&str]) -> Self {
        let mut parts = vec![Part::from_text("base.yaml", base)];
        for (i, o) in overrides.iter().enumerate() {
            let body = if o.contains("merge_how") {
                o.to_string()
            } else {
                format!("{}\n{MERGE_APPEND}", o.trim_end())
            };
            parts.push(Part::from_text(&format!("override-{i}.yaml"), &body));
        }
        UserData::Parts(parts)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        Ok(UserData::Raw(
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?,
        ))
    }

    pub fn render(&self) -> String {
        match self {
            UserData::Raw(s) => s.clone(),
            UserData::Parts(parts) => {
                let boundary = "==OMLBOOT-E2E-BOUNDARY==";
                let mut out = format!(
                    "Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n"
                );
                for p in parts {
                    out += &format!(
                        "--{boundary}\nContent-Type: {}; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\nContent-Disposition: attachment; filename=\"{}\"\n\n{}\n",
                        p.content_type,
                        p.filename,
                        p.body.trim_end()
                    );
                }
                out += &format!("--{boundary}--\n");
                out
            }
        }
    }
}

impl Part {
    /// Picks the MIME type from the text's first line like cloud-init does (`#cloud-config`, `#!`, ...).
    pub fn from_text(filename: &str, body: &str) -> Self {
        let first = body.lines().next().unwrap_or("").trim();
        let content_type = if first.starts_with("#cloud-config") {
            "text/cloud-config"
        } else if first.starts_with("#!") {
            "text/x-shellscript"
        } else if first.starts_with("#cloud-boothook") {
            "text/cloud-boothook"
        } else {
            "text/cloud-config"
        };
        Part {
            content_type: content_type.into(),
            filename: filename.into(),
            body: body.into(),
        }
    }
}

/// One NIC of a guest.
#[derive(Debug, Clone)]
pub enum Nic {
    /// QEMU user networking with `restrict=on` (no way out of the VM), configured statically as a LAN host:
    /// 10.0.2.15/24 with a default route via 10.0.2.2 (slirp's DHCP leaves out the router when restricted).
    User,
    /// The same network by DHCP: 10.0.2.15/24 and no default route.
    UserDhcp,
    /// The lab's private segment (a hub in the test process joining the guests over unix datagram sockets):
    /// a static address like "10.77.0.11/24"; `gateway` only writes a default route (nothing answers there).
    Private {
        address: String,
        gateway: Option<String>,
    },
}

pub fn meta_data(instance_id: &str, hostname: &str) -> String {
    format!("instance-id: {instance_id}\nlocal-hostname: {hostname}\n")
}

/// NoCloud network-config (version 1) for the NICs in order; `macs[i]` and `names[i]` belong to `nics[i]`.
pub fn network_config(nics: &[Nic], macs: &[String], names: &[String]) -> String {
    let mut out = String::from("version: 1\nconfig:\n");
    for (i, nic) in nics.iter().enumerate() {
        out += &format!(
            "  - type: physical\n    name: {}\n    mac_address: \"{}\"\n    subnets:\n",
            names[i], macs[i]
        );
        match nic {
            Nic::User => out += "      - type: static\n        address: 10.0.2.15/24\n        gateway: 10.0.2.2\n        dns_nameservers: [10.0.2.3]\n",
            Nic::UserDhcp => out += "      - type: dhcp\n",
            Nic::Private { address, gateway } => {
                out += &format!("      - type: static\n        address: {address}\n");
                if let Some(gw) = gateway {
                    out += &format!("        gateway: {gw}\n");
                }
            }
        }
    }
    out
}

/// Writes user-data, meta-data, network-config into `dir` and packs them into `iso` (label cidata).
pub fn make_seed_iso(
    dir: &Path,
    iso: &Path,
    user_data: &str,
    meta: &str,
    netcfg: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("user-data"), user_data)?;
    std::fs::write(dir.join("meta-data"), meta)?;
    std::fs::write(dir.join("network-config"), netcfg)?;
    let out = Command::new("genisoimage")
        .args(["-quiet", "-output"])
        .arg(iso)
        .args(["-volid", "cidata", "-joliet", "-rock"])
        .arg(dir.join("user-data"))
        .arg(dir.join("meta-data"))
        .arg(dir.join("network-config"))
        .output()
        .context("run genisoimage (tests/e2e/setup-host.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "genisoimage failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
