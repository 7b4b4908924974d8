//! `omlboot status [--wait]`: the state apply records, per component.
use super::{to_json, Inputs, Report};
use crate::apply::state::{State, Status};
use crate::error::{Code, Result};
use std::time::{Duration, Instant};

pub enum StatusReport {
    /// No apply has run on this host yet.
    NotStarted,
    State(Box<State>),
    /// `--wait --timeout` passed before apply finished (nothing is printed, like before).
    TimedOut,
}

/// Read the state; with `wait`, until apply has finished or `timeout` passes.
pub fn status(inputs: &Inputs, wait: bool, timeout: Option<Duration>) -> Result<StatusReport> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        match State::load(&inputs.root)? {
            None if !wait => return Ok(StatusReport::NotStarted),
            Some(s) if !wait || s.status != Status::Running => {
                return Ok(StatusReport::State(Box::new(s)))
            }
            _ if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Ok(StatusReport::TimedOut)
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// One line per component: state, unit and the reason it failed.
pub(super) fn state_table(s: &State) -> String {
    let mut out = format!(
        "status: {:?} (role {}, {})\n",
        s.status, s.role, s.instance_id
    )
    .to_lowercase();
    let w = s.components.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, c) in &s.components {
        let reason = c
            .reason
            .as_ref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {name:<w$}  {:<10} {}{reason}\n",
            c.state, c.unit
        ));
        if let Some(p) = &c.probe {
            out.push_str(&format!(
                "  {:<w$}  probe {} {} after {:.1}s at {}: {}\n",
                "",
                if p.passed { "passed" } else { "FAILED" },
                p.probe,
                p.took_ms as f64 / 1000.0,
                p.at_unix,
                p.detail
            ));
        }
    }
    if !s.tasks.is_empty() {
        out.push_str("tasks:\n");
        let w = s.tasks.keys().map(|k| k.len()).max().unwrap_or(0);
        for (name, t) in &s.tasks {
            let exit = t
                .exit_status
                .map(|e| format!(" exit {e}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {name:<w$}  {:<9} at {}{exit}, {} successful run(s)\n",
                t.outcome, t.at_unix, t.successes
            ));
            if t.outcome == "failed" || t.outcome == "blocked" {
                for line in t.output_tail.lines() {
                    out.push_str(&format!("  {:<w$}  | {line}\n", ""));
                }
            }
        }
    }
    out.push_str(&crate::apply::upgrade::status_lines(s));
    for n in &s.notices {
        out.push_str(&format!("notice: {n}\n"));
    }
    for e in &s.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

impl Report for StatusReport {
    fn table(&self) -> String {
        match self {
            StatusReport::NotStarted => "status: not started\n".into(),
            StatusReport::State(s) => state_table(s),
            StatusReport::TimedOut => String::new(),
        }
    }
    fn json(&self) -> serde_json::Value {
        match self {
            StatusReport::NotStarted => serde_json::json!({ "status": "not started" }),
            StatusReport::State(s) => to_json(s),
            StatusReport::TimedOut => serde_json::Value::Null,
        }
    }
    fn notes(&self, _json: bool) -> Vec<String> {
        match self {
            StatusReport::TimedOut => vec!["omlboot: status --wait: timed out".into()],
            _ => Vec::new(),
        }
    }
    fn code(&self) -> Code {
        match self {
            StatusReport::NotStarted => Code::Ok,
            StatusReport::State(s) => s.status.code(),
            StatusReport::TimedOut => Code::Failed,
        }
    }
}
