//! `omlboot restore SOURCE [--discard-previous]`: everything checked before anything is touched
//! (exit 2 when the source is corrupt or incomplete), the old database kept until confirmed.
use super::{to_json, Inputs, Report};
use crate::backup::{config::Backup, restore, seams};
use crate::error::{Error, Result};

pub struct Restored(pub restore::Restored);

pub fn restore(inputs: &Inputs, source: &str, discard_previous: bool) -> Result<Restored> {
    let cfg = inputs.config()?;
    let s = cfg.settings();
    let b = Backup::from_settings(&s);
    let units = inputs.units()?;
    let role = s.role.clone();
    let writers: Vec<String> = units
        .catalog
        .components
        .iter()
        .filter(|c| c.writes_db && c.hosts.contains(&role))
        .map(|c| c.unit.clone())
        .collect();
    let pg = super::backup::host_pg(&cfg, &s, inputs)?;
    let dest = super::backup::destination(&b, inputs)?;
    // One omlboot at a time: apply must not start the units restore stopped.
    let _lock = crate::apply::state::lock(&inputs.root)?;
    let req = restore::Request {
        source,
        discard_previous,
        writers,
        work: b.work.clone(),
        root: inputs.root.clone(),
        now: crate::apply::state::now_unix(),
    };
    match restore::restore(
        &pg,
        &seams::PodmanVolumes,
        &seams::Systemctl,
        dest.as_deref(),
        &req,
    ) {
        Ok(r) => Ok(Restored(r)),
        Err(restore::Refused::Invalid(m)) => Err(Error::invalid(m)),
        Err(restore::Refused::Failed(e)) => Err(Error::Failed(e)),
    }
}

impl Report for Restored {
    fn table(&self) -> String {
        let r = &self.0;
        format!(
            "restored {} into {} ({} tables, {} rows) in {} ms{}\n",
            r.source,
            r.database,
            r.tables,
            r.rows,
            r.duration_ms,
            if r.volumes.is_empty() {
                String::new()
            } else {
                format!("; volumes {}", r.volumes.join(", "))
            }
        )
    }
    fn json(&self) -> serde_json::Value {
        to_json(&self.0)
    }
    fn notes(&self, _json: bool) -> Vec<String> {
        self.0.notes.iter().map(|n| format!("note: {n}")).collect()
    }
}
