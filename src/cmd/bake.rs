//! `omlboot bake --role ROLE`: packages and images for an image to clone, then clean it.
use super::apply::engine_options;
use super::status::state_table;
use super::{runtime, Inputs, Report};
use crate::apply::{self, state::State};
use crate::bake::{self as baking, Action};
use crate::config::{key, Config};
use crate::error::{Code, Error, Result};
use crate::facts::{self, Facts};
use anyhow::Context as _;
use std::time::{Duration, Instant};

pub enum Baked {
    /// Packages or images failed: the image was not cleaned.
    Failed(State),
    Done {
        state: State,
        actions: Vec<Action>,
        role: &'static str,
        cleaned: bool,
        took: Duration,
    },
}

pub fn bake(inputs: &Inputs, clean: bool) -> Result<Baked> {
    let mut cfg = Config::load_for_bake(&inputs.sources()?)?;
    if !cfg.is_given(key::role) {
        return Err(Error::invalid(
            "bake needs the role the image is for: --role aio|data|voice|app",
        ));
    }
    baking::fill_placeholders(&mut cfg);
    let units = inputs.units()?;
    crate::catalog::ports::check(&cfg, &units)?;
    let mut facts: Facts =
        Facts::from_config_only(&cfg).context("bake placeholders left an address open")?;
    facts.os = facts::os::read(&inputs.root);
    let plan = crate::plan::build(&mut cfg, &facts, &units, &Default::default())?;
    let opts = engine_options(inputs, &cfg, &facts, "bake".into());
    let started = Instant::now();
    let rt = runtime()?;
    let _lock = apply::state::lock(&inputs.root)?;
    let state = rt.block_on(apply::engine::prepare(&plan, &opts))?;
    if state.status != apply::state::Status::Done {
        return Ok(Baked::Failed(state));
    }
    let exe = std::env::current_exe().context("locating this omlboot binary")?;
    let actions = rt.block_on(baking::finish(&inputs.root, &exe, &plan, clean))?;
    Ok(Baked::Done {
        state,
        actions,
        role: cfg.role().as_str(),
        cleaned: clean,
        took: started.elapsed(),
    })
}

impl Report for Baked {
    fn table(&self) -> String {
        match self {
            Baked::Failed(state) => state_table(state),
            Baked::Done { .. } => String::new(),
        }
    }
    fn json(&self) -> serde_json::Value {
        match self {
            Baked::Failed(state) => super::to_json(state),
            Baked::Done { state, actions, .. } => serde_json::json!({
                "status": state.status, "steps": state.steps, "actions": actions
            }),
        }
    }
    fn notes(&self, json: bool) -> Vec<String> {
        match self {
            Baked::Failed(_) => vec!["omlboot: bake failed; the image was not cleaned".into()],
            Baked::Done {
                actions,
                role,
                cleaned,
                took,
                ..
            } => {
                let mut lines: Vec<String> = if json {
                    Vec::new()
                } else {
                    actions
                        .iter()
                        .map(|a| format!("omlboot: {:<48} {}", a.what, a.outcome))
                        .collect()
                };
                let how = if *cleaned {
                    "; cleaned for cloning"
                } else {
                    " (not cleaned)"
                };
                lines.push(format!(
                    "omlboot: baked role {role} in {:.1}s{how}",
                    took.as_secs_f64()
                ));
                lines
            }
        }
    }
    fn code(&self) -> Code {
        match self {
            Baked::Failed(_) => Code::Failed,
            Baked::Done { .. } => Code::Ok,
        }
    }
}
