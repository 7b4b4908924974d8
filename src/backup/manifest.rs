//! The manifest: what a backup holds, written LAST as its own object next to the archive. A backup
//! without its manifest does not exist; listing shows only backups whose manifest is present, names
//! the archive's checksum, and whose archive is present.
use super::archive::{Member, Sealed, Stream};
use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: u32 = 1;
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    /// Unix seconds.
    pub at: u64,
    pub duration_ms: u64,
    /// Tables compared and rows counted in the throwaway database.
    pub tables: usize,
    pub rows: u64,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRef {
    /// File name of the archive, in the same directory as the manifest.
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Backup name (the file names' stem): `<tenant>-<YYYYMMDD>T<HHMMSS>Z`.
    pub name: String,
    pub tenant: String,
    /// Unix seconds when the backup started.
    pub created_at: u64,
    pub duration_ms: u64,
    pub omlboot_version: String,
    pub archive: ArchiveRef,
    pub members: Vec<Member>,
    pub streams: Vec<Stream>,
    /// Image references in use (config key → reference), postgres first of all.
    pub images: BTreeMap<String, String>,
    /// `schema.table` → rows, counted in the source database right before the dump.
    pub tables: BTreeMap<String, u64>,
    /// The resolved config, secrets left out.
    pub config: BTreeMap<String, serde_json::Value>,
    pub verified: Option<Verification>,
}

impl Manifest {
    pub fn sealed(&self) -> Sealed {
        Sealed {
            size: self.archive.size,
            sha256: self.archive.sha256.clone(),
            members: self.members.clone(),
            streams: self.streams.clone(),
        }
    }

    pub fn is_verified(&self) -> bool {
        self.verified.as_ref().is_some_and(|v| v.ok)
    }

    pub fn stream<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Stream> + 'a {
        self.streams.iter().filter(move |s| s.kind == kind)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// Parse and check that it is complete: a format we know and an archive checksum.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes).context("manifest is not valid JSON")?;
        if m.format != FORMAT {
            bail!(
                "manifest format {} is not supported (expected {FORMAT})",
                m.format
            );
        }
        if m.archive.sha256.len() != 64 || !m.archive.sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            bail!("manifest names no archive checksum");
        }
        if m.streams.iter().all(|s| s.kind != "pg_dump") {
            bail!("manifest lists no database dump");
        }
        Ok(m)
    }
}

/// The resolved config with every secret key left out (not even redacted: absent).
pub fn config_without_secrets(cfg: &crate::config::Config) -> BTreeMap<String, serde_json::Value> {
    use crate::config::schema::{Kind, KEYS};
    let mut out = BTreeMap::new();
    for k in KEYS {
        if k.kind == Kind::Secret || k.name.contains("secret") || k.name.contains("password") {
            continue;
        }
        if let Some(v) = cfg.get(k.name) {
            out.insert(
                k.name.to_string(),
                serde_json::to_value(v.to_string()).unwrap_or_default(),
            );
        }
    }
    out
}
