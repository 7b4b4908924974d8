//! `omlboot detect`: this host's facts.
use super::{runtime, to_json, Inputs, Report};
use crate::error::Result;
use crate::facts::{self, Facts};

pub struct Detected(pub Facts);

pub fn detect(inputs: &Inputs) -> Result<Detected> {
    let cfg = inputs.config()?;
    Ok(Detected(
        runtime()?.block_on(facts::gather(&inputs.root, &cfg)),
    ))
}

impl Report for Detected {
    fn json(&self) -> serde_json::Value {
        to_json(&self.0)
    }
    fn table(&self) -> String {
        let f = &self.0;
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let mut s = String::new();
        let mut row = |k: &str, v: String| s.push_str(&format!("{k:<18} {v}\n"));
        row(
            "os",
            format!("{} ({:?})", f.os.pretty_name, f.os.family).to_lowercase(),
        );
        row("podman", opt(&f.podman_version));
        row("systemd", opt(&f.systemd_version));
        for n in &f.nics {
            let addrs: Vec<String> = n
                .ipv4
                .iter()
                .map(|a| format!("{}/{}", a.address, a.prefix))
                .collect();
            let shown = if addrs.is_empty() {
                "-".into()
            } else {
                addrs.join(" ")
            };
            let virt = if n.is_virtual { " (virtual)" } else { "" };
            row(&format!("nic {}", n.name), format!("{shown}{virt}"));
        }
        row("default route", opt(&f.default_route_nic));
        row(
            "private ip",
            format!(
                "{} on {} ({})",
                f.private_ip.map(|i| i.to_string()).unwrap_or("-".into()),
                opt(&f.nic),
                opt(&f.private_ip_source)
            ),
        );
        row(
            "platform",
            format!("{:?} ({})", f.platform, f.platform_evidence).to_lowercase(),
        );
        row(
            "public ip",
            format!(
                "{} ({})",
                f.public_ip.map(|i| i.to_string()).unwrap_or("-".into()),
                opt(&f.public_ip_source)
            ),
        );
        row(
            "infra_env",
            format!("{} ({})", f.infra_env, f.infra_env_source),
        );
        row(
            "resources",
            format!(
                "{} cpu, {} MiB, {} GiB free",
                f.resources.cpus, f.resources.memory_mib, f.resources.disk_free_gib
            ),
        );
        for w in &f.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }
}
