//! The ports components listen on, from the catalog, and the check that no two components of a
//! host share one. Validation runs it with the config, so a port key's value counts, and a
//! component added in a copy of units/ is checked like the built-in ones.
use super::{wiring, Units};
use crate::config::schema::{self, Kind};
use crate::config::{Config, ConfigError, ConfigErrors};

/// One `ports:` entry: a fixed port or range, or a config key holding the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub what: PortValue,
    pub proto: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortValue {
    Range(u16, u16),
    Key(&'static str),
}

impl PortSpec {
    pub fn parse(spec: &str) -> Result<PortSpec, String> {
        let (port, proto) = spec
            .split_once('/')
            .ok_or_else(|| format!("{spec:?}: expected PORT/PROTO such as 8000/tcp"))?;
        if !matches!(proto, "tcp" | "udp") {
            return Err(format!("{spec:?}: protocol must be tcp or udp"));
        }
        let num = |s: &str| s.parse::<u16>().ok().filter(|n| *n > 0);
        let what = if let Some(k) = schema::lookup(port) {
            if k.kind != Kind::Port {
                return Err(format!("{spec:?}: {port} is not a port key"));
            }
            PortValue::Key(k.name)
        } else if let Some((lo, hi)) = port.split_once('-') {
            match (num(lo), num(hi)) {
                (Some(lo), Some(hi)) if lo <= hi => PortValue::Range(lo, hi),
                _ => return Err(format!("{spec:?}: bad port range")),
            }
        } else {
            let n = num(port).ok_or_else(|| {
                format!("{spec:?}: {port} is neither a port 1-65535 nor a port key of the config")
            })?;
            PortValue::Range(n, n)
        };
        Ok(PortSpec {
            what,
            proto: proto.to_string(),
        })
    }

    fn range(&self, cfg: &Config) -> Option<(u16, u16)> {
        match self.what {
            PortValue::Range(lo, hi) => Some((lo, hi)),
            PortValue::Key(k) => cfg.int(k).map(|p| (p as u16, p as u16)),
        }
    }
}

/// Every port two components of this host would both listen on, as config errors (exit 2). The
/// error is put on the key the operator set, not on the default it collides with.
pub fn check(cfg: &Config, units: &Units) -> Result<(), ConfigErrors> {
    let ctx = wiring::config_context(cfg);
    let role = cfg.role().as_str();
    let mut used: Vec<(&str, PortSpec)> = Vec::new();
    for c in &units.catalog.components {
        if !c.hosts.iter().any(|h| h == role) {
            continue;
        }
        // A broken `when:` is reported by the plan; here it only means "not known to run".
        if let Some(w) = &c.when {
            if !units.condition(w, &ctx).unwrap_or(false) {
                continue;
            }
        }
        used.extend(
            c.ports
                .iter()
                .filter_map(|p| PortSpec::parse(p).ok())
                .map(|p| (c.name.as_str(), p)),
        );
    }
    let mut errs = Vec::new();
    for (i, (name, spec)) in used.iter().enumerate() {
        let Some((lo, hi)) = spec.range(cfg) else {
            continue;
        };
        // A component's own ports may overlap (rtpengine's control port inside its RTP range).
        let clash = used[..i].iter().find(|(other, o)| {
            other != name
                && o.proto == spec.proto
                && o.range(cfg).is_some_and(|(l, h)| lo <= h && l <= hi)
        });
        if let Some((other, other_spec)) = clash {
            errs.push(conflict(cfg, lo, (name, spec), (other, other_spec)));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errs))
    }
}

fn conflict(
    cfg: &Config,
    port: u16,
    this: (&str, &PortSpec),
    other: (&str, &PortSpec),
) -> ConfigError {
    let key_of = |s: &PortSpec| match s.what {
        PortValue::Key(k) => Some(k),
        PortValue::Range(..) => None,
    };
    let name = |(comp, s): (&str, &PortSpec)| match key_of(s) {
        Some(k) => k.to_string(),
        None => format!("{comp} ({port}/{})", s.proto),
    };
    // Blame the key the operator gave; else any key; else it is the catalog's own clash.
    let (culprit, victim) = match (key_of(this.1), key_of(other.1)) {
        (Some(a), Some(b)) if !cfg.is_given(a) && cfg.is_given(b) => (other, this),
        (Some(_), _) => (this, other),
        (None, Some(_)) => (other, this),
        (None, None) => {
            return ConfigError {
                location: "units/catalog.yaml".into(),
                key: String::new(),
                message: format!("{} and {} both listen on {port}", name(this), name(other)),
            }
        }
    };
    let key = key_of(culprit.1).unwrap_or_default();
    ConfigError {
        location: cfg
            .origin(key)
            .map(|o| o.to_string())
            .unwrap_or_else(|| "config".into()),
        key: key.to_string(),
        message: format!("port {port} is already used by {}", name(victim)),
    }
}
