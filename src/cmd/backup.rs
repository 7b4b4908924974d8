//! `omlboot backup [--scheduled] [--list]`: one verified backup to the configured destination; with
//! `--scheduled` (the timer's service) only when the schedule's pure decision says so.
use super::{to_json, Inputs, Report};
use crate::backup::{self, config::Backup, pg, record::Record, schedule, seams};
use crate::config::{schema::Settings, Config};
use crate::error::{Code, Error, Result};
use std::collections::BTreeMap;

pub enum BackedUp {
    Done(Box<backup::Done>),
    /// `--scheduled` outside the window, already done, or waiting to retry.
    Skipped(String),
    /// `--list`: backups on the destination, newest first (name, created_at, size, verified).
    Listed(Vec<(String, u64, u64, bool)>),
}

/// The host's database as the backup engine sees it: the postgres container, or a one-shot
/// container of the postgres image for an external `postgres_host`.
pub(super) fn host_pg(cfg: &Config, s: &Settings, inputs: &Inputs) -> Result<pg::Pg> {
    let units = inputs.units()?;
    let container = units
        .catalog
        .components
        .iter()
        .find(|c| c.name == "postgresql")
        .map(|c| c.container.clone())
        .unwrap_or_else(|| "oml-postgresql-server".into());
    let password = match &s.postgres_password {
        Some(p) => Some(p.expose().to_string()),
        None => crate::plan::secrets::load(&inputs.root)?
            .get("postgres_password")
            .cloned(),
    };
    let _ = cfg;
    let (client, host) = match &s.postgres_host {
        Some(h) => (
            pg::Client::Run {
                image: s.postgres_img.clone(),
            },
            Some(h.clone()),
        ),
        None => (pg::Client::Exec { container }, None),
    };
    Ok(pg::Pg {
        client,
        host,
        port: s.postgres_port,
        user: s.postgres_user.clone(),
        password,
        database: s.postgres_database.clone(),
        maintenance_db: s.postgres_maintenance_db.clone(),
        scratch: pg::ScratchKind::Container {
            image: s.postgres_img.clone(),
        },
    })
}

/// The configured destination; an S3 secret left to the secrets store is read from it.
pub(crate) fn destination(
    b: &Backup,
    inputs: &Inputs,
) -> Result<Option<Box<dyn backup::dest::Destination>>> {
    let root = inputs.root.clone();
    let generated = move |k: &str| {
        crate::plan::secrets::load(&root)
            .ok()
            .and_then(|m| m.get(k).cloned())
    };
    Ok(b.destination(&generated)?)
}

pub fn backup(inputs: &Inputs, scheduled: bool, list: bool) -> Result<BackedUp> {
    let cfg = inputs.config()?;
    let s = cfg.settings();
    let b = Backup::from_settings(&s);
    let dest = destination(&b, inputs)?
        .ok_or_else(|| Error::invalid("no backup destination: set backup_destination"))?;
    if list {
        let listed = backup::list(dest.as_ref())?;
        return Ok(BackedUp::Listed(
            listed
                .iter()
                .map(|l| {
                    (
                        l.manifest.name.clone(),
                        l.manifest.created_at,
                        l.manifest.archive.size,
                        l.manifest.is_verified(),
                    )
                })
                .collect(),
        ));
    }
    // One omlboot at a time on a host (apply must not restart postgres under a running backup), and
    // the schedule's decision is taken under the lock so two timer runs cannot both decide to run.
    let _lock = crate::apply::state::lock(&inputs.root)?;
    let now = crate::apply::state::now_unix();
    let mut record = Record::load(&inputs.root)?;
    if scheduled {
        let Some(window) = &b.window else {
            return Ok(BackedUp::Skipped("no backup schedule configured".into()));
        };
        if let schedule::Decision::Skip(why) =
            schedule::decide(window, now, record.last_success, record.last_attempt)
        {
            return Ok(BackedUp::Skipped(why));
        }
    }
    let units = inputs.units()?;
    let spec = backup::Spec {
        tenant: s.tenant_id.clone(),
        template: b.template.clone(),
        volumes: units
            .catalog
            .components
            .iter()
            .flat_map(|c| c.backup_volumes.clone())
            .collect(),
        images: image_refs(&cfg),
        config: backup::manifest::config_without_secrets(&cfg),
        work: b.work.clone(),
        chunk: backup::archive::CHUNK,
        verify: b.verify,
        retention: Some(b.policy),
    };
    let pg = host_pg(&cfg, &s, inputs)?;
    // The attempt is recorded first: a run killed -9 counts as a failed attempt for the schedule.
    record.last_attempt = Some(now);
    record.save(&inputs.root)?;
    let result = backup::run(&pg, &seams::PodmanVolumes, dest.as_ref(), &spec, now);
    match result {
        Ok(done) => {
            let v = done.verified.clone();
            // A backup that did not verify is a failed run for the schedule: retried after 20 min.
            if v.as_ref().is_none_or(|v| v.ok) {
                record.last_success = Some(now);
            }
            record.last_error = v.as_ref().and_then(|v| v.error.clone());
            record.last = Some(backup::record::Last {
                name: done.name.clone(),
                destination: done.destination.clone(),
                created_at: now,
                size: done.size,
                duration_ms: done.duration_ms,
                verified: v.as_ref().is_some_and(|v| v.ok),
                verify_ms: v.as_ref().map(|v| v.duration_ms).unwrap_or(0),
                verify_error: v.and_then(|v| v.error),
            });
            record.save(&inputs.root)?;
            Ok(BackedUp::Done(Box::new(done)))
        }
        Err(e) => {
            record.last_error = Some(format!("{e:#}"));
            record.save(&inputs.root)?;
            Err(Error::Failed(e))
        }
    }
}

fn image_refs(cfg: &Config) -> BTreeMap<String, String> {
    crate::config::schema::KEYS
        .iter()
        .filter(|k| k.name.ends_with("_img"))
        .filter_map(|k| {
            cfg.text(k.name)
                .map(|v| (k.name.to_string(), v.to_string()))
        })
        .collect()
}

impl Report for BackedUp {
    fn table(&self) -> String {
        match self {
            BackedUp::Done(d) => {
                let verified = match &d.verified {
                    Some(v) if v.ok => format!(
                        "verified ({} tables, {} rows, {} ms)",
                        v.tables, v.rows, v.duration_ms
                    ),
                    Some(v) => format!("NOT verified: {}", v.error.as_deref().unwrap_or("?")),
                    None => "not verified (backup_verify is false)".into(),
                };
                format!(
                    "backup {} on {}\n  size {} bytes, {} ms, {} tables, {} rows\n  {verified}\n{}",
                    d.name,
                    d.destination,
                    d.size,
                    d.duration_ms,
                    d.tables,
                    d.rows,
                    d.deleted
                        .iter()
                        .map(|n| format!("  retention deleted {n}\n"))
                        .collect::<String>()
                )
            }
            BackedUp::Skipped(why) => format!("backup skipped: {why}\n"),
            BackedUp::Listed(l) => l
                .iter()
                .map(|(n, t, size, v)| {
                    format!(
                        "{n}  {}  {size} bytes  {}\n",
                        schedule::Utc::from_unix(*t).human(),
                        if *v { "verified" } else { "unverified" }
                    )
                })
                .collect(),
        }
    }
    fn json(&self) -> serde_json::Value {
        match self {
            BackedUp::Done(d) => to_json(d),
            BackedUp::Skipped(why) => serde_json::json!({ "skipped": why }),
            BackedUp::Listed(l) => serde_json::json!(l
                .iter()
                .map(|(n, t, s, v)| serde_json::json!({"name": n, "created_at": t, "size": s, "verified": v}))
                .collect::<Vec<_>>()),
        }
    }
    fn code(&self) -> Code {
        match self {
            BackedUp::Done(d) if d.verified.as_ref().is_some_and(|v| !v.ok) => Code::Failed,
            _ => Code::Ok,
        }
    }
}
