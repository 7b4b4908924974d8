//! `omlboot status [--wait]`: the state apply records, per component.
use super::{to_json, Inputs, Report};
use crate::apply::state::{lock_held, State, Status};
use crate::backup::record::Record;
use crate::backup::schedule::Utc;
use crate::error::{Code, Result};
use std::time::{Duration, Instant};

/// Provisioning state plus the backup record (last backup, size, duration, verification).
pub struct StatusReport {
    pub provisioning: Provisioning,
    pub backup: Record,
    /// The backup schedule, when the config sets one.
    pub schedule: Option<Schedule>,
}

/// The configured backup window and when the next backup is due.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Schedule {
    pub window: String,
    /// Unix time the next backup is due (now when the window is open and not yet used).
    pub next: Option<u64>,
    pub timer: &'static str,
}

fn schedule(inputs: &Inputs, record: &Record) -> Option<Schedule> {
    // status works without a config too: no config, no schedule shown.
    let cfg = inputs.config().ok()?;
    let w = crate::backup::config::Backup::from_settings(&cfg.settings()).window?;
    Some(Schedule {
        window: w.describe(),
        next: w.next_window(crate::apply::state::now_unix(), record.last_success),
        timer: crate::backup::schedule::TIMER,
    })
}

fn schedule_line(s: &Option<Schedule>) -> String {
    match s {
        None => String::new(),
        Some(s) => format!(
            "backup schedule: {} ({}); next: {}\n",
            s.window,
            s.timer,
            s.next
                .map(|t| Utc::from_unix(t).human())
                .unwrap_or_else(|| "never".into())
        ),
    }
}

pub enum Provisioning {
    /// No apply has run on this host yet.
    NotStarted,
    State(Box<State>),
    /// `--wait --timeout` passed before apply finished (nothing is printed, like before).
    TimedOut,
}

/// Read the state; with `wait`, until apply has finished or `timeout` passes.
pub fn status(inputs: &Inputs, wait: bool, timeout: Option<Duration>) -> Result<StatusReport> {
    let provisioning = provisioning(inputs, wait, timeout)?;
    let backup = Record::load(&inputs.root).unwrap_or_default();
    Ok(StatusReport {
        provisioning,
        schedule: schedule(inputs, &backup),
        backup,
    })
}

fn provisioning(inputs: &Inputs, wait: bool, timeout: Option<Duration>) -> Result<Provisioning> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        match State::load(&inputs.root)? {
            None if !wait => return Ok(Provisioning::NotStarted),
            Some(mut s) if s.status == Status::Running && !lock_held(&inputs.root) => {
                // Nobody holds the lock: the run that wrote "running" was killed or lost power.
                s.status = Status::Failed;
                s.errors.push(
                    "interrupted: the run that wrote this state ended without finishing (killed or a power cut); \
                     `omlboot apply` converges the host"
                        .into(),
                );
                return Ok(Provisioning::State(Box::new(s)));
            }
            Some(s) if !wait || s.status != Status::Running => {
                return Ok(Provisioning::State(Box::new(s)))
            }
            _ if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Ok(Provisioning::TimedOut)
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
    if let Some(i) = &s.interrupted {
        out.push_str(&format!(
            "previous run: interrupted (started at {}, {} steps recorded, last: {}; {}/{} components active)\n",
            i.started_unix,
            i.steps,
            i.last_step.as_deref().unwrap_or("none"),
            i.components_active,
            i.components
        ));
    }
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
        match &self.provisioning {
            Provisioning::NotStarted => {
                "status: not started\n".to_string()
                    + &backup_line(&self.backup)
                    + &schedule_line(&self.schedule)
            }
            Provisioning::State(s) => {
                state_table(s) + &backup_line(&self.backup) + &schedule_line(&self.schedule)
            }
            Provisioning::TimedOut => String::new(),
        }
    }
    fn json(&self) -> serde_json::Value {
        match &self.provisioning {
            Provisioning::NotStarted => {
                serde_json::json!({ "status": "not started", "backup": to_json(&self.backup), "backup_schedule": to_json(&self.schedule) })
            }
            Provisioning::State(s) => {
                let mut v = to_json(s);
                if let Some(o) = v.as_object_mut() {
                    o.insert("backup".into(), to_json(&self.backup));
                    o.insert("backup_schedule".into(), to_json(&self.schedule));
                }
                v
            }
            Provisioning::TimedOut => serde_json::Value::Null,
        }
    }
    fn notes(&self, _json: bool) -> Vec<String> {
        match &self.provisioning {
            Provisioning::TimedOut => vec!["omlboot: status --wait: timed out".into()],
            _ => Vec::new(),
        }
    }
    fn code(&self) -> Code {
        match &self.provisioning {
            Provisioning::NotStarted => Code::Ok,
            Provisioning::State(s) => s.status.code(),
            Provisioning::TimedOut => Code::Failed,
        }
    }
}

/// One line about the last backup (nothing when no backup was ever attempted).
fn backup_line(r: &Record) -> String {
    let mut out = String::new();
    if let Some(l) = &r.last {
        out.push_str(&format!(
            "backup: last {} ({}) on {}: {} bytes in {} ms, {}\n",
            l.name,
            Utc::from_unix(l.created_at).human(),
            l.destination,
            l.size,
            l.duration_ms,
            if l.verified {
                format!("verified in {} ms", l.verify_ms)
            } else {
                format!(
                    "NOT verified{}",
                    l.verify_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            }
        ));
    }
    if let (Some(a), Some(e)) = (r.last_attempt, &r.last_error) {
        if r.last_success.is_none_or(|s| a > s) {
            out.push_str(&format!(
                "backup: the attempt at {} failed: {e}\n",
                Utc::from_unix(a).human()
            ));
        }
    }
    out
}
