//! Restore at first boot (`restore_file_timestamp`, omldeploytool's key): what `omlboot run` does
//! once apply has provisioned the host. Once per instance (recorded in the backup record), through
//! the same checked restore as `omlboot restore` (a missing, corrupt or incomplete source is
//! refused before anything is touched; the fresh database is kept, never dropped), then the units
//! that were stopped are started again and must pass their probes.
use super::dest::Destination;
use super::record::{FirstBoot, Record};
use super::restore::{self, Refused, Request, Restored};
use super::seams::{Postgres, Services, Volumes};
use anyhow::anyhow;
use std::path::PathBuf;

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
