//! Backup and restore: a streamed archive (the `pg_dump -Fc` dump and the files' volumes) with a
//! manifest written last, put on a [`dest::Destination`], verified by a restore into a throwaway
//! database, pruned by [`retention`], run in a [`schedule`] window; [`restore`] checks everything
//! before it touches anything and keeps what it replaces until confirmed.
pub mod archive;
pub mod config;
pub mod dest;
pub mod firstboot;
pub mod manifest;
pub mod pg;
pub mod record;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod seams;
pub mod verify;

use anyhow::{Context as _, Result};
use dest::Destination;
use manifest::{ArchiveRef, Manifest, Verification, ARCHIVE_SUFFIX, MANIFEST_SUFFIX};
use seams::{Postgres, Volumes};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// What a backup run needs besides the seams.
#[derive(Debug, Clone)]
pub struct Spec {
    pub tenant: String,
    /// Directory template on the destination (see [`dest::render_template`]).
    pub template: String,
    /// Podman volumes whose content goes into the archive (catalog `backup_volumes`).
    pub volumes: Vec<String>,
    pub images: BTreeMap<String, String>,
    pub config: BTreeMap<String, serde_json::Value>,
    /// Local directory for the archive before upload (same file system as nothing in particular).
    pub work: PathBuf,
    pub chunk: usize,
    pub verify: bool,
    pub retention: Option<retention::Policy>,
}

/// A finished backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    pub name: String,
    /// Object name of the manifest on the destination.
    pub manifest: String,
    pub destination: String,
    pub size: u64,
    pub duration_ms: u64,
    pub tables: usize,
    pub rows: u64,
    pub verified: Option<Verification>,
    /// Backups retention deleted.
    pub deleted: Vec<String>,
}

/// A backup present on a destination: its manifest is there, parses, names the archive's checksum,
/// and the archive object is there too.
#[derive(Debug, Clone)]
pub struct Listed {
    pub manifest_key: String,
    pub archive_key: String,
    pub manifest: Manifest,
}

/// Take one backup: dump + volumes into the archive (streamed), verify, upload archive, then the
/// manifest, then prune.
pub fn run(
    pg: &dyn Postgres,
    volumes: &dyn Volumes,
    dest: &dyn Destination,
    spec: &Spec,
    now: u64,
) -> Result<Done> {
    let started = Instant::now();
    let name = format!(
        "{}-{}",
        spec.tenant,
        schedule::Utc::from_unix(now).compact()
    );
    let dir = dest::render_template(&spec.template, &spec.tenant, now);
    let key = |suffix: &str| {
        if dir.is_empty() {
            format!("{name}{suffix}")
        } else {
            format!("{dir}/{name}{suffix}")
        }
    };
    std::fs::create_dir_all(&spec.work)
        .with_context(|| format!("creating {}", spec.work.display()))?;
    // Leftovers of a killed run.
    for e in std::fs::read_dir(&spec.work)?.flatten() {
        if e.file_name().to_string_lossy().ends_with(".partial") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let local = spec.work.join(format!("{name}{ARCHIVE_SUFFIX}.partial"));
    let result = (|| -> Result<Done> {
        let tables = pg
            .row_counts(pg.database())
            .context("counting rows in the source database")?;
        let mut w = archive::Writer::create(&local, spec.chunk, now)?;
        let dump_name = format!("db/{}.dump", pg.database());
        let mut dump = None;
        pg.dump(&mut |r| {
            dump = Some(w.add_stream(&dump_name, "pg_dump", r)?);
            Ok(())
        })?;
        let dump = dump.context("pg_dump produced no output")?;
        for v in &spec.volumes {
            if !volumes.exists(v) {
                tracing::info!("volume {v} does not exist here; not backed up");
                continue;
            }
            volumes
                .export(v, &mut |r| {
                    w.add_stream(&format!("volumes/{v}.tar"), "volume", r)
                        .map(|_| ())
                })
                .with_context(|| format!("exporting volume {v}"))?;
        }
        let sealed = w.finish()?;
        let verified = spec
            .verify
            .then(|| verify::verify(pg, &local, &dump, &tables, now));
        let archive_key = key(ARCHIVE_SUFFIX);
        let manifest = Manifest {
            format: manifest::FORMAT,
            name: name.clone(),
            tenant: spec.tenant.clone(),
            created_at: now,
            duration_ms: started.elapsed().as_millis() as u64,
            omlboot_version: env!("CARGO_PKG_VERSION").into(),
            archive: ArchiveRef {
                file: archive_key.rsplit('/').next().unwrap().to_string(),
                size: sealed.size,
                sha256: sealed.sha256.clone(),
            },
            members: sealed.members,
            streams: sealed.streams,
            images: spec.images.clone(),
            tables: tables.clone(),
            config: spec.config.clone(),
            verified: verified.clone(),
        };
        dest.put(&local, &archive_key)
            .with_context(|| format!("uploading the archive to {}", dest.describe()))?;
        let manifest_key = key(MANIFEST_SUFFIX);
        // Written last: until this rename the backup does not exist.
        dest.put_bytes(&manifest.to_json(), &manifest_key)
            .with_context(|| format!("uploading the manifest to {}", dest.describe()))?;
        let mut deleted = Vec::new();
        if let Some(policy) = spec.retention {
            deleted = prune(dest, policy)?;
        }
        Ok(Done {
            name: name.clone(),
            manifest: manifest_key,
            destination: dest.describe(),
            size: sealed.size,
            duration_ms: started.elapsed().as_millis() as u64,
            tables: tables.len(),
            rows: tables.values().sum(),
            verified,
            deleted,
        })
    })();
    let _ = std::fs::remove_file(&local);
    result
}

/// Backups on `dest`, newest first. Manifests that are unreadable or whose archive is missing are
/// not backups and are left out.
pub fn list(dest: &dyn Destination) -> Result<Vec<Listed>> {
    let objects = dest.list()?;
    let mut out = Vec::new();
    for m in objects.iter().filter(|o| o.ends_with(MANIFEST_SUFFIX)) {
        let Ok(bytes) = dest.get_bytes(m) else {
            continue;
        };
        let Ok(manifest) = Manifest::parse(&bytes) else {
            tracing::warn!("{m}: not a valid manifest; ignored");
            continue;
        };
        let dir = m.rsplit_once('/').map(|(d, _)| d);
        let archive_key = match dir {
            Some(d) => format!("{d}/{}", manifest.archive.file),
            None => manifest.archive.file.clone(),
        };
        if !objects.contains(&archive_key) {
            tracing::warn!("{m}: its archive {archive_key} is missing; ignored");
            continue;
        }
        out.push(Listed {
            manifest_key: m.clone(),
            archive_key,
            manifest,
        });
    }
    out.sort_by_key(|l| std::cmp::Reverse(l.manifest.created_at));
    Ok(out)
}

/// Apply retention on `dest`: delete the manifest first (the backup stops existing), then the archive.
pub fn prune(dest: &dyn Destination, policy: retention::Policy) -> Result<Vec<String>> {
    let listed = list(dest)?;
    let items: Vec<retention::Item> = listed
        .iter()
        .map(|l| retention::Item {
            name: l.manifest_key.clone(),
            created_at: l.manifest.created_at,
            verified: l.manifest.is_verified(),
        })
        .collect();
    let (_, delete) = retention::plan(&items, policy);
    let mut deleted = Vec::new();
    // Archives without a manifest (a run killed between the two uploads) older than the newest
    // backup can never become backups: remove them. Names end in a sortable UTC stamp.
    if let Some(newest) = listed.first() {
        let stamp = |s: &str| s.rsplit('-').next().unwrap_or("").to_string();
        let newest = stamp(&newest.manifest.name);
        for o in dest.list()? {
            let Some(stem) = o.strip_suffix(ARCHIVE_SUFFIX) else {
                continue;
            };
            if !listed.iter().any(|l| l.archive_key == o) && stamp(stem) < newest {
                dest.delete(&o)?;
            }
        }
    }
    for d in delete {
        let l = listed.iter().find(|l| l.manifest_key == d.name).unwrap();
        dest.delete(&l.manifest_key)?;
        dest.delete(&l.archive_key)?;
        deleted.push(l.manifest.name.clone());
    }
    Ok(deleted)
}
