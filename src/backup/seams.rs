//! What backup and restore touch on the host, as traits: the database, the podman volumes that hold
//! files, and the units. Real implementations: [`super::pg::Pg`] (podman exec/run, or host binaries),
//! [`PodmanVolumes`], [`Systemctl`]; tests use host binaries against throwaway clusters,
//! [`DirVolumes`] and a recording fake of [`Services`].
use crate::exec::blocking;
use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Gives a reader to the callee.
pub type Sink<'a> = &'a mut dyn FnMut(&mut dyn Read) -> Result<()>;
/// Writes into the writer it is given.
pub type Feed<'a> = &'a mut dyn FnMut(&mut dyn Write) -> Result<()>;

pub trait Postgres {
    /// What runs the tools (image or binaries), for the manifest and messages.
    fn describe(&self) -> String;
    /// The database backups are taken of.
    fn database(&self) -> &str;
    /// `pg_dump -Fc` of [`Self::database`], handed to `sink` as it is produced.
    fn dump(&self, sink: Sink) -> Result<()>;
    /// `schema.table` → exact row count, in `database`.
    fn row_counts(&self, database: &str) -> Result<BTreeMap<String, u64>>;
    /// `pg_restore --list` of a dump file: fails unless it is a readable custom-format dump.
    fn check_dump(&self, dump: &Path) -> Result<()>;
    fn databases(&self) -> Result<Vec<String>>;
    /// Create `database` (dropping a leftover of that name) and load the dump `feed` writes, in
    /// one transaction.
    fn load(&self, database: &str, feed: Feed) -> Result<()>;
    /// Atomically (one transaction): rename [`Self::database`] to `previous` (when it exists) and
    /// `staged` to [`Self::database`].
    fn switch(&self, staged: &str, previous: &str) -> Result<()>;
    fn drop_database(&self, database: &str) -> Result<()>;
    /// A throwaway server of the same version/image, removed when the value is dropped.
    fn scratch(&self) -> Result<Scratch>;
}

/// A throwaway database server for verification; `db` talks to it.
pub struct Scratch {
    pub db: Box<dyn Postgres>,
    pub(crate) cleanup: Option<Box<dyn FnOnce()>>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(f) = self.cleanup.take() {
            f();
        }
    }
}

/// Named podman volumes whose content is backed up (Asterisk files).
pub trait Volumes {
    fn exists(&self, name: &str) -> bool;
    /// A tar of the volume's content.
    fn export(&self, name: &str, sink: Sink) -> Result<()>;
    /// Unpack a tar into the volume (created when missing), over what is there.
    fn import(&self, name: &str, feed: Feed) -> Result<()>;
    /// `to` (created when missing) gets `from`'s content: what a restore replaces is kept there.
    fn copy(&self, from: &str, to: &str) -> Result<()> {
        let mut bytes = Vec::new();
        self.export(from, &mut |r| {
            r.read_to_end(&mut bytes)?;
            Ok(())
        })?;
        self.import(to, &mut |w| Ok(w.write_all(&bytes)?))
    }
    fn remove(&self, name: &str) -> Result<()>;
}

/// The units restore stops and starts.
pub trait Services {
    fn stop(&self, units: &[String]) -> Result<()>;
    fn start(&self, units: &[String]) -> Result<()>;
}

pub struct PodmanVolumes;

impl Volumes for PodmanVolumes {
    fn exists(&self, name: &str) -> bool {
        Command::new("podman")
            .args(["volume", "exists", name])
            .status()
            .is_ok_and(|s| s.success())
    }
    fn export(&self, name: &str, sink: Sink) -> Result<()> {
        blocking::read_stdout(
            Command::new("podman").args(["volume", "export", name]),
            sink,
        )
    }
    fn import(&self, name: &str, feed: Feed) -> Result<()> {
        if !self.exists(name) {
            blocking::output(Command::new("podman").args(["volume", "create", name]))?;
        }
        blocking::write_stdin(
            Command::new("podman").args(["volume", "import", name, "-"]),
            feed,
        )
    }
    fn copy(&self, from: &str, to: &str) -> Result<()> {
        // Streamed: a volume of sounds is not read into memory.
        self.export(from, &mut |r| {
            self.import(to, &mut |w| Ok(std::io::copy(r, w).map(drop)?))
        })
    }
    fn remove(&self, name: &str) -> Result<()> {
        blocking::output(Command::new("podman").args(["volume", "rm", name]))?;
        Ok(())
    }
}

/// Volumes as directories `<root>/<name>` (tests, and hosts where a volume is a plain directory).
pub struct DirVolumes {
    pub root: PathBuf,
}

impl Volumes for DirVolumes {
    fn exists(&self, name: &str) -> bool {
        self.root.join(name).is_dir()
    }
    fn export(&self, name: &str, sink: Sink) -> Result<()> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_dir_all(".", self.root.join(name))
            .with_context(|| format!("reading volume {name}"))?;
        let bytes = b.into_inner()?;
        sink(&mut &bytes[..])
    }
    fn import(&self, name: &str, feed: Feed) -> Result<()> {
        let mut bytes = Vec::new();
        feed(&mut bytes)?;
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir)?;
        tar::Archive::new(&bytes[..])
            .unpack(&dir)
            .with_context(|| format!("unpacking into volume {name}"))
    }
    fn remove(&self, name: &str) -> Result<()> {
        Ok(std::fs::remove_dir_all(self.root.join(name))?)
    }
}

pub struct Systemctl;

impl Services for Systemctl {
    fn stop(&self, units: &[String]) -> Result<()> {
        if units.is_empty() {
            return Ok(());
        }
        blocking::output(Command::new("systemctl").arg("stop").args(units))?;
        Ok(())
    }
    fn start(&self, units: &[String]) -> Result<()> {
        if units.is_empty() {
            return Ok(());
        }
        blocking::output(Command::new("systemctl").arg("start").args(units))?;
        Ok(())
    }
}
