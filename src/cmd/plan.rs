//! `omlboot plan`: the ordered steps apply would take, secrets redacted.
use super::{build_plan, plan_facts, to_json, Inputs, Report};
use crate::error::Result;
use crate::plan::Plan;

pub struct Planned(pub Plan);

pub fn plan(inputs: &Inputs) -> Result<Planned> {
    let (mut cfg, units) = inputs.load()?;
    let facts = plan_facts(inputs, &cfg)?;
    let plan = build_plan(&mut cfg, &facts, &units, &[&inputs.root])?;
    Ok(Planned(plan))
}

impl Report for Planned {
    fn table(&self) -> String {
        self.0.table()
    }
    fn json(&self) -> serde_json::Value {
        to_json(&self.0)
    }
}
