//! `omlboot upgrade [--force]`: apply, with every image change through the health gate (pre-pull,
//! previous image kept, restart, probe + stability window, rollback of that component alone), voice
//! restarts waiting for their calls; the summary says what was upgraded, rolled back or waits.
use super::apply::{converge, Applied};
use super::{Inputs, Report};
use crate::apply::drain::Window;
use crate::apply::upgrade::Day2;
use crate::config::Config;
use crate::error::{Code, Error, Result};
use std::time::Duration;

/// The day-2 settings from the config (window checked here, before anything is touched).
pub fn day2(cfg: &Config, force: bool) -> Result<Day2> {
    let s = cfg.settings();
    let window = Window::parse(
        s.maintenance_weekdays.as_deref(),
        s.maintenance_hours.as_deref(),
    )
    .map_err(Error::invalid)?;
    Ok(Day2 {
        stability_window: Duration::from_secs(s.stability_window_s),
        drain_timeout: Duration::from_secs(s.drain_timeout_s),
        window,
        force,
        ..Default::default()
    })
}

pub struct Upgraded(pub Applied);

pub fn upgrade(inputs: &Inputs, force: bool) -> Result<Upgraded> {
    if force {
        eprintln!(
            "omlboot: --force: asterisk, kamailio and rtpengine restart at once, calls or not"
        );
    }
    Ok(Upgraded(converge(inputs, false, force)?))
}

impl Report for Upgraded {
    fn table(&self) -> String {
        self.0.table()
    }
    fn json(&self) -> serde_json::Value {
        self.0.json()
    }
    fn notes(&self, json: bool) -> Vec<String> {
        let mut notes = self.0.notes(json);
        if let Applied::Finished { state, .. } = &self.0 {
            let mut by: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (name, r) in &state.upgrades {
                if r.outcome != "installed" && !r.outcome.is_empty() {
                    by.entry(r.outcome.as_str()).or_default().push(name);
                }
            }
            for (outcome, names) in by {
                notes.push(format!("omlboot: {outcome}: {}", names.join(", ")));
            }
        }
        notes
    }
    /// 0 everything upgraded, 3 rolled back and healthy on the previous version, 1 otherwise.
    fn code(&self) -> Code {
        self.0.code()
    }
}
