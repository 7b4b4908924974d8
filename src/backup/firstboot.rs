//! Restore at first boot (`restore_file_timestamp`, omldeploytool's key): what `omlboot run` does
//! once apply has provisioned the host. Once per instance (recorded in the backup record), through
//! the same checked restore as `omlboot restore` (a missing, corrupt or incomplete source is
//! refused before anything is touched; the fresh database is kept, never dropped), then the units
//! that were stopped are started again and must pass their probes. Then the tasks that wrote the
//! fresh database (catalog `after_restore`: migrations, admin reset) run again on the restored one.
use super::dest::Destination;
use super::record::{FirstBoot, Record};
use super::restore::{self, Refused, Request, Restored};
use super::seams::{Postgres, Services, Volumes};
use crate::apply::state::{State, Status};
use anyhow::anyhow;
use std::path::{Path, PathBuf};

pub struct Spec<'a> {
    /// The backup to restore (a backup name, a manifest key, or omldeploytool's `<ts>`).
    pub source: &'a str,
    /// This instance: a re-run (or a reboot) on it never restores again.
    pub instance: &'a str,
    /// Units stopped during the restore, started after, then probed (catalog `writes_db`).
    pub writers: Vec<String>,
    pub work: PathBuf,
    pub root: PathBuf,
    pub now: u64,
}

#[derive(Debug)]
pub enum Outcome {
    /// Restored now, units healthy.
    Restored(Box<Restored>),
    /// Restored by an earlier run on this instance; probes pass (checked again if they had not).
    AlreadyDone(FirstBoot),
}

/// The health check after the restore: the probes of `units` (Err: what failed).
pub type Check<'a> = &'a dyn Fn(&[String]) -> anyhow::Result<()>;

pub fn restore_once(
    pg: &dyn Postgres,
    volumes: &dyn Volumes,
    services: &dyn Services,
    dest: Option<&dyn Destination>,
    spec: &Spec,
    check: Check,
) -> Result<Outcome, Refused> {
    let mut record = Record::load(&spec.root)?;
    if let Some(done) = record
        .first_boot
        .clone()
        .filter(|d| d.instance == spec.instance)
    {
        if !done.probes_passed {
            check(&spec.writers).map_err(|e| probes_failed(e, &done.source))?;
            record.first_boot = Some(FirstBoot {
                probes_passed: true,
                ..done.clone()
            });
            record.save(&spec.root)?;
        }
        return Ok(Outcome::AlreadyDone(record.first_boot.unwrap()));
    }
    let req = Request {
        source: spec.source,
        // The database apply just created is kept as <db>_previous_<tag>, never dropped here.
        discard_previous: false,
        writers: spec.writers.clone(),
        work: spec.work.clone(),
        root: spec.root.clone(),
        now: spec.now,
    };
    let restored = restore::restore(pg, volumes, services, dest, &req).map_err(|e| match e {
        Refused::Invalid(m) => Refused::Invalid(format!(
            "restore_file_timestamp {}: {m}; the fresh database was not touched",
            spec.source
        )),
        Refused::Failed(e) => Refused::Failed(e.context(format!(
            "restore_file_timestamp {}: the restore failed",
            spec.source
        ))),
    })?;
    // Recorded before the probes: the data is restored; a failed probe is checked again by the
    // next run, which never restores a second time.
    let mut record = Record::load(&spec.root)?;
    record.first_boot = Some(FirstBoot {
        instance: spec.instance.into(),
        source: spec.source.into(),
        restored_at: spec.now,
        previous: restored.previous.clone(),
        probes_passed: false,
        tasks_rerun: false,
    });
    record.save(&spec.root)?;
    check(&spec.writers).map_err(|e| probes_failed(e, spec.source))?;
    if let Some(f) = record.first_boot.as_mut() {
        f.probes_passed = true;
    }
    record.save(&spec.root)?;
    Ok(Outcome::Restored(Box::new(restored)))
}

fn probes_failed(e: anyhow::Error, source: &str) -> Refused {
    Refused::Failed(anyhow!(
        "restored {source}, but the units' probes fail after starting them again: {e:#} (the next `omlboot run` probes again; it does not restore twice)"
    ))
}

/// Whether a converge owes this instance (part of) its first-boot restore: only `run` (`apply` never
/// restores nor re-runs tasks) with `restore_file_timestamp`, until the record says restored, probed
/// and the `after_restore` tasks re-run.
pub fn pending(
    run: bool,
    restore_file_timestamp: Option<&str>,
    root: &Path,
    instance: &str,
) -> anyhow::Result<bool> {
    if !run || restore_file_timestamp.is_none() {
        return Ok(false);
    }
    Ok(Record::load(root)?
        .first_boot
        .is_none_or(|f| f.instance != instance || !f.probes_passed || !f.tasks_rerun))
}

/// After [`restore_once`] succeeded: `tasks` (catalog `after_restore`) ran on the fresh database,
/// which the restore replaced with one from another host, maybe another OMniLeads version;
/// omldeploytool runs its migrations and admin reset after its restore. Their records are forgotten
/// and `converge` applies again, which runs them as on a new host. The record says done only once
/// that apply reached done, so a run killed or failed before it runs them again next time (twice is
/// harmless; the restore itself is never repeated). None when nothing was owed.
pub fn rerun_tasks(
    root: &Path,
    instance: &str,
    tasks: &[String],
    converge: impl FnOnce() -> anyhow::Result<State>,
) -> anyhow::Result<Option<State>> {
    let owed = Record::load(root)?
        .first_boot
        .is_some_and(|f| f.instance == instance && f.probes_passed && !f.tasks_rerun);
    if !owed {
        return Ok(None);
    }
    let state = if tasks.is_empty() {
        None
    } else {
        crate::apply::state::forget_tasks(root, tasks)?;
        Some(converge()?)
    };
    if state.as_ref().is_none_or(|s| s.status == Status::Done) {
        let mut record = Record::load(root)?;
        if let Some(f) = record.first_boot.as_mut() {
            f.tasks_rerun = true;
        }
        record.save(root)?;
    }
    Ok(state)
}
