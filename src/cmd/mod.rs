//! One function per command, each returning a typed outcome the binary prints.
//!
//! The binary (src/main.rs) parses the command line into [`Inputs`], calls one of these, prints the
//! outcome as a table or JSON ([`Report`]) and exits with its [`Code`]. Everything a command needs
//! (config, units, facts, plan) is assembled here, once, so a new command (`upgrade`, `backup`) is a
//! new file beside these and a line in main.
mod apply;
mod backup;
mod bake;
mod detect;
mod plan;
mod render;
mod restore;
mod rollback;
mod status;
mod upgrade;
mod validate;

pub use apply::{apply, apply_force, run, Applied};
pub use backup::{backup, BackedUp};
pub use bake::{bake, Baked};
pub use detect::{detect, Detected};
pub use plan::{plan, Planned};
pub use render::{render, Rendered};
pub use restore::{restore, Restored};
pub use rollback::{rollback, RolledBack};
pub use status::{status, StatusReport};
pub use upgrade::{upgrade, Upgraded};
pub use validate::{validate, Validated};

use crate::catalog::Units;
use crate::config::{Config, Sources};
use crate::error::{Code, Error, Result};
use crate::facts::{self, Facts};
use crate::plan::{secrets, Plan};
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// What every command reads: the command line's global flags and the environment.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `--config FILE`; `None` reads the default path if present.
    pub config: Option<PathBuf>,
    /// `--set KEY=VALUE`, in order.
    pub sets: Vec<String>,
    /// `--role`.
    pub role: Option<String>,
    /// Host root that facts and state are read from ("/" in production).
    pub root: PathBuf,
    /// `--units DIR`, else the built-in catalog.
    pub units: Option<PathBuf>,
    /// The process environment (only `OMLBOOT_*` is looked at).
    pub env: Vec<(String, String)>,
}

/// How a command's outcome is shown: a table on stdout (and notes on stderr), or JSON on stdout.
pub trait Report {
    /// Lines for stdout in table format.
    fn table(&self) -> String;
    /// The same outcome as JSON.
    fn json(&self) -> serde_json::Value;
    /// Remarks for stderr (warnings, summaries); `json` says which format stdout got.
    fn notes(&self, _json: bool) -> Vec<String> {
        Vec::new()
    }
    fn code(&self) -> Code {
        Code::Ok
    }
}

impl Inputs {
    fn sources(&self) -> Result<Sources> {
        Ok(Sources {
            file: Sources::read_file(self.config.as_deref())?,
            env: self.env.clone(),
            sets: self.sets.clone(),
            role: self.role.clone(),
        })
    }

    /// The validated config and the units it is checked against (ports of the host's components).
    fn load(&self) -> Result<(Config, Units)> {
        let cfg = Config::load(&self.sources()?)?;
        let units = self.units()?;
        crate::catalog::ports::check(&cfg, &units)?;
        Ok((cfg, units))
    }

    /// The validated config, for commands that plan nothing (detect).
    fn config(&self) -> Result<Config> {
        Ok(self.load()?.0)
    }

    fn units(&self) -> Result<Units> {
        match &self.units {
            Some(dir) => Units::from_dir(dir)
                .map_err(|e| Error::invalid(format!("--units {}: {e:#}", dir.display()))),
            None => Ok(Units::embedded()?),
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?)
}

/// Without a private IP nothing can be planned; that is the operator's to fix (exit 2), not a failure.
fn require_private_ip(facts: &Facts) -> Result<()> {
    if facts.private_ip.is_none() {
        return Err(Error::invalid(
            "cannot determine this host's private IP (omni_ip_lan): set omni_ip_lan or omni_nic",
        ));
    }
    Ok(())
}

/// Facts for plan/render: none gathered when the config fixes every address (no network, no host reads).
fn plan_facts(inputs: &Inputs, cfg: &Config) -> Result<Facts> {
    match Facts::from_config_only(cfg) {
        Some(f) => Ok(f),
        None => Ok(runtime()?.block_on(facts::gather(&inputs.root, cfg))),
    }
}

/// The plan from config, facts and units; generated secrets come from the first store found under
/// `store_roots` (render's output directory first, so re-rendering keeps its values).
fn build_plan(
    cfg: &mut Config,
    facts: &Facts,
    units: &Units,
    store_roots: &[&Path],
) -> Result<Plan> {
    require_private_ip(facts)?;
    let mut store = Default::default();
    for root in store_roots {
        store = secrets::load(root)?;
        if !store.is_empty() {
            break;
        }
    }
    Ok(crate::plan::build(cfg, facts, units, &store)?)
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
