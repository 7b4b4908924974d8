//! Restore: fetch, check the manifest and every checksum BEFORE touching anything, then stop the
//! units that write to the database, load the dump into a NEW database, switch to it in one
//! transaction (the old one is kept as `<db>_previous_<tag>` until confirmed, or dropped with
//! `--discard-previous`), restore the files (each volume's content first copied to
//! `<volume>_previous_<tag>`, kept the same way), start the units.
//!
//! Why a new database and not a new volume: the switch is one transaction on any PostgreSQL, the
//! host's container or an external `postgres_host` (where there is no volume to switch), and the
//! units, their env and their volumes stay exactly as `apply` rendered them.
//!
//! Sources: a backup name (or its manifest key) on the destination, a local `.manifest.json` (its
//! archive next to it), or an omldeploytool dump (`pgsql-backup-<ts>.sql`, pg_dump custom format, no
//! manifest: no checksum to verify, but `pg_restore --list` must read it before anything is touched).
use super::archive::{self, Stream};
use super::dest::Destination;
use super::manifest::{Manifest, MANIFEST_SUFFIX};
use super::seams::{Postgres, Services, Volumes};
use crate::fsutil;
use anyhow::{anyhow, Context as _, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const JOURNAL_PATH: &str = "var/lib/omlboot/restore.json";

/// Why a restore did not happen.
#[derive(Debug)]
pub enum Refused {
    /// The source is missing, corrupt or incomplete: nothing was touched (exit 2).
    Invalid(String),
    /// Something failed while restoring (exit 1); the journal says what state the host is in.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Failed(e)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub source: String,
    /// Checksums verified (false for an omldeploytool dump, which has none).
    pub checksummed: bool,
    pub database: String,
    /// The replaced database, kept until confirmed (None when discarded or there was none).
    pub previous: Option<String>,
    pub volumes: Vec<String>,
    /// Copies of the volumes' content before the restore, kept like `previous`.
    pub previous_volumes: Vec<String>,
    pub tables: usize,
    pub rows: u64,
    pub duration_ms: u64,
    pub notes: Vec<String>,
}

/// The journal: written before each step, so a killed restore is understood by the next run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Journal {
    /// Unix seconds the restore started (a journal left by an earlier restore is older).
    #[serde(default)]
    pub started_unix: u64,
    pub tag: String,
    pub step: String,
    pub staged: String,
    pub previous: String,
    pub source: String,
}

fn save_journal(root: &Path, j: &Journal) -> Result<()> {
    let p = root.join(JOURNAL_PATH);
    fsutil::ensure_dir(p.parent().unwrap(), 0o700)?;
    fsutil::write_atomic(&p, &serde_json::to_vec_pretty(j)?, 0o600)?;
    Ok(())
}

pub fn load_journal(root: &Path) -> Option<Journal> {
    serde_json::from_slice(&std::fs::read(root.join(JOURNAL_PATH)).ok()?).ok()
}

/// What the source turned out to be, fetched into the work directory and checked.
enum Checked {
    Archive {
        path: PathBuf,
        manifest: Box<Manifest>,
    },
    Legacy {
        path: PathBuf,
    },
}

pub struct Request<'a> {
    pub source: &'a str,
    pub discard_previous: bool,
    /// Units stopped during the restore and started after (catalog `writes_db`).
    pub writers: Vec<String>,
    pub work: PathBuf,
    /// Host root for the journal (`/`).
    pub root: PathBuf,
    pub now: u64,
}

pub fn restore(
    pg: &dyn Postgres,
    volumes: &dyn Volumes,
    services: &dyn Services,
    dest: Option<&dyn Destination>,
    req: &Request,
) -> Result<Restored, Refused> {
    let started = Instant::now();
    std::fs::create_dir_all(&req.work).map_err(|e| Refused::Failed(e.into()))?;
    let mut notes = Vec::new();
    // 1. Fetch and check, touching nothing.
    let checked = fetch_and_check(pg, dest, req)?;
    // What was downloaded into the work directory goes when this returns.
    let _fetched = Fetched(match &checked {
        Checked::Archive { path, .. } | Checked::Legacy { path } if path.starts_with(&req.work) => {
            Some(path.clone())
        }
        _ => None,
    });
    match &checked {
        Checked::Legacy { .. } => notes.push("omldeploytool dump: it carries no checksum, so none was verified (pg_restore --list read it)".into()),
        Checked::Archive { manifest, .. } if !manifest.is_verified() => notes.push(format!(
            "backup {} was never verified by a test restore; its checksums were",
            manifest.name
        )),
        _ => {}
    }
    // A previous restore killed before its switch left a staged database: drop it.
    if let Some(j) = load_journal(&req.root) {
        if j.step != "done" && !j.staged.is_empty() && j.staged != pg.database() {
            let _ = pg.drop_database(&j.staged);
        }
    }
    let tag = super::schedule::Utc::from_unix(req.now)
        .compact()
        .to_lowercase();
    let db = pg.database().to_string();
    let mut journal = Journal {
        started_unix: req.now,
        tag: tag.clone(),
        step: "stop".into(),
        staged: format!("{db}_restore_{tag}"),
        previous: format!("{db}_previous_{tag}"),
        source: req.source.into(),
    };
    save_journal(&req.root, &journal)?;
    // 2. Stop the writers. From here on, start them again whatever happens.
    services
        .stop(&req.writers)
        .context("stopping the units that write to the database")?;
    let result = (|| -> Result<(Option<String>, Vec<String>, Vec<String>)> {
        journal.step = "load".into();
        save_journal(&req.root, &journal)?;
        pg.load(&journal.staged, &mut |w| match &checked {
            Checked::Archive { path, manifest } => {
                archive::extract_stream(path, dump_stream(manifest)?, w)
            }
            Checked::Legacy { path } => {
                std::io::copy(&mut std::fs::File::open(path)?, w)?;
                Ok(())
            }
        })
        .inspect_err(|_| {
            let _ = pg.drop_database(&journal.staged);
        })?;
        if let Checked::Archive { manifest, .. } = &checked {
            let got = pg.row_counts(&journal.staged)?;
            if let Err(e) = super::verify::compare(&manifest.tables, &got) {
                let _ = pg.drop_database(&journal.staged);
                return Err(e.context("the restored database does not match the manifest; the live database was not touched"));
            }
        }
        journal.step = "switch".into();
        save_journal(&req.root, &journal)?;
        let had_live = pg.databases()?.contains(&db);
        pg.switch(&journal.staged, &journal.previous)?;
        journal.step = "files".into();
        save_journal(&req.root, &journal)?;
        let mut restored_volumes = Vec::new();
        let mut kept_volumes = Vec::new();
        if let Checked::Archive { path, manifest } = &checked {
            for s in manifest.stream("volume") {
                let name = s
                    .name
                    .trim_start_matches("volumes/")
                    .trim_end_matches(".tar")
                    .to_string();
                // The tar goes over what is there: keep a copy of it first, as the database is kept.
                if volumes.exists(&name) {
                    let kept = format!("{name}_previous_{tag}");
                    volumes
                        .copy(&name, &kept)
                        .with_context(|| format!("keeping volume {name} as {kept}"))?;
                    kept_volumes.push(kept);
                }
                volumes
                    .import(&name, &mut |w| archive::extract_stream(path, s, w))
                    .with_context(|| format!("restoring volume {name}"))?;
                restored_volumes.push(name);
            }
        }
        let previous = if !had_live {
            None
        } else if req.discard_previous {
            pg.drop_database(&journal.previous)?;
            None
        } else {
            Some(journal.previous.clone())
        };
        if req.discard_previous {
            for v in kept_volumes.drain(..) {
                volumes.remove(&v)?;
            }
        }
        Ok((previous, restored_volumes, kept_volumes))
    })();
    let start = services.start(&req.writers);
    let (previous, restored_volumes, previous_volumes) = result?;
    start.context("starting the units again")?;
    journal.step = "done".into();
    save_journal(&req.root, &journal)?;
    let counts = pg.row_counts(&db).unwrap_or_default();
    if let Some(p) = &previous {
        notes.push(format!(
            "the replaced database is kept as {p}; drop it once the restore is confirmed (or restore with --discard-previous)"
        ));
    }
    if !previous_volumes.is_empty() {
        notes.push(format!(
            "the volumes' previous content is kept in {}; `podman volume rm` them once the restore is confirmed",
            previous_volumes.join(", ")
        ));
    }
    Ok(Restored {
        source: req.source.into(),
        checksummed: matches!(checked, Checked::Archive { .. }),
        database: db,
        previous,
        volumes: restored_volumes,
        previous_volumes,
        tables: counts.len(),
        rows: counts.values().sum(),
        duration_ms: started.elapsed().as_millis() as u64,
        notes,
    })
}

struct Fetched(Option<PathBuf>);

impl Drop for Fetched {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn dump_stream(m: &Manifest) -> Result<&Stream> {
    m.stream("pg_dump")
        .next()
        .ok_or_else(|| anyhow!("manifest lists no dump"))
}

fn invalid(msg: impl Into<String>) -> Refused {
    Refused::Invalid(msg.into())
}

fn is_legacy_name(s: &str) -> bool {
    let f = s.rsplit('/').next().unwrap_or(s);
    f.starts_with("pgsql-backup-") && f.ends_with(".sql")
}

fn fetch_and_check(
    pg: &dyn Postgres,
    dest: Option<&dyn Destination>,
    req: &Request,
) -> Result<Checked, Refused> {
    let src = req.source;
    let local = Path::new(src);
    // A local file.
    if local.is_absolute() {
        if !local.is_file() {
            return Err(invalid(format!("{src}: no such file")));
        }
        if src.ends_with(MANIFEST_SUFFIX) {
            let manifest =
                Manifest::parse(&std::fs::read(local).map_err(|e| invalid(format!("{src}: {e}")))?)
                    .map_err(|e| invalid(format!("{src}: {e:#}")))?;
            let path = local.with_file_name(&manifest.archive.file);
            if !path.is_file() {
                return Err(invalid(format!(
                    "{src}: its archive {} is missing: incomplete backup",
                    path.display()
                )));
            }
            return check_archive(path, manifest);
        }
        if src.ends_with(super::manifest::ARCHIVE_SUFFIX) {
            let m = PathBuf::from(src.replace(super::manifest::ARCHIVE_SUFFIX, MANIFEST_SUFFIX));
            if !m.is_file() {
                return Err(invalid(format!(
                    "{src}: no manifest next to it ({}): incomplete backup",
                    m.display()
                )));
            }
            let manifest = Manifest::parse(&std::fs::read(&m).map_err(|e| invalid(e.to_string()))?)
                .map_err(|e| invalid(format!("{}: {e:#}", m.display())))?;
            return check_archive(local.to_path_buf(), manifest);
        }
        pg.check_dump(local).map_err(|e| {
            invalid(format!(
                "{src}: not a backup omlboot or omldeploytool made: {e:#}"
            ))
        })?;
        return Ok(Checked::Legacy {
            path: local.to_path_buf(),
        });
    }
    let dest = dest.ok_or_else(|| {
        invalid(format!(
            "{src} is not an absolute path and no backup_destination is configured"
        ))
    })?;
    // omldeploytool: pgsql-backup-<ts>.sql, or just <ts> (restore_file_timestamp).
    let objects = dest.list()?;
    let legacy_file = if is_legacy_name(src) {
        Some(src.rsplit('/').next().unwrap().to_string())
    } else if src.chars().all(|c| c.is_ascii_digit() || c == '_') && !src.is_empty() {
        Some(format!("pgsql-backup-{src}.sql"))
    } else {
        None
    };
    if let Some(file) = legacy_file {
        if let Some(key) = objects
            .iter()
            .find(|o| o.rsplit('/').next() == Some(file.as_str()))
        {
            let path = req.work.join(format!("{file}.restore"));
            dest.get(key, &path)?;
            pg.check_dump(&path).map_err(|e| {
                let _ = std::fs::remove_file(&path);
                invalid(format!("{key}: {e:#}"))
            })?;
            return Ok(Checked::Legacy { path });
        }
    }
    let listed = super::list(dest)?;
    let found = listed
        .iter()
        .find(|l| l.manifest.name == src || l.manifest_key == src)
        .ok_or_else(|| {
            invalid(format!(
                "{src}: no such backup on {} (omlboot backup list shows the backups there)",
                dest.describe()
            ))
        })?;
    let path = req
        .work
        .join(format!("{}.restore", found.manifest.archive.file));
    dest.get(&found.archive_key, &path)?;
    check_archive(path.clone(), found.manifest.clone()).inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })
}

fn check_archive(path: PathBuf, manifest: Manifest) -> Result<Checked, Refused> {
    archive::check(&path, &manifest.sealed())
        .map_err(|e| invalid(format!("{}: {e:#}; nothing was touched", path.display())))?;
    Ok(Checked::Archive {
        path,
        manifest: Box::new(manifest),
    })
}
