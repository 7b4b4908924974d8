//! `omlboot rollback [COMPONENT…]`: back to the recorded previous images, offline (a tag and a
//! restart, no registry), gated by the same probes. Without components: every component that has a
//! previous image.
use super::apply::engine_options;
use super::status::state_table;
use super::{build_plan, runtime, to_json, Inputs, Report};
use crate::apply::{self, state::State};
use crate::error::{Code, Error, Result};
use crate::facts;

pub struct RolledBack {
    pub state: Box<State>,
    pub components: Vec<String>,
}

pub fn rollback(inputs: &Inputs, components: &[String]) -> Result<RolledBack> {
    let (mut cfg, units) = inputs.load()?;
    let rt = runtime()?;
    let root = &inputs.root;
    let instance = apply::state::instance_id(root)
        .ok_or_else(|| Error::invalid("cannot identify this instance: no /etc/machine-id"))?;
    let _lock = apply::state::lock(root)?;
    let facts = rt.block_on(facts::gather(root, &cfg));
    super::require_private_ip(&facts)?;
    let plan = build_plan(&mut cfg, &facts, &units, &[root])?;
    // Usage errors (exit 2) before anything is touched.
    let recorded = State::load(root)?.map(|s| s.upgrades).unwrap_or_default();
    for name in components {
        if !plan.components.iter().any(|c| &c.name == name) {
            return Err(Error::invalid(format!("no component {name} on this host")));
        }
        if recorded.get(name).is_none_or(|r| r.previous_id.is_none()) {
            return Err(Error::invalid(format!(
                "{name} has no previous image recorded: nothing to roll back to"
            )));
        }
    }
    let opts = engine_options(inputs, &cfg, &facts, instance);
    let day2 = super::upgrade::day2(&cfg, false)?;
    let state = rt.block_on(async {
        let host = apply::engine::Host::live(&opts).await?;
        apply::upgrade::rollback_on(&plan, &opts, &day2, &host, components).await
    })?;
    Ok(RolledBack {
        state: Box::new(state),
        components: components.to_vec(),
    })
}

impl Report for RolledBack {
    fn table(&self) -> String {
        state_table(&self.state)
    }
    fn json(&self) -> serde_json::Value {
        to_json(&self.state)
    }
    fn notes(&self, _json: bool) -> Vec<String> {
        let back: Vec<&str> = self
            .state
            .upgrades
            .iter()
            .filter(|(_, r)| r.outcome == "rolled back")
            .map(|(n, _)| n.as_str())
            .collect();
        vec![format!("omlboot: rolled back: {}", back.join(", "))]
    }
    /// 0 when every component rolled back is healthy on its previous image, 1 otherwise.
    fn code(&self) -> Code {
        self.state.status.code()
    }
}
