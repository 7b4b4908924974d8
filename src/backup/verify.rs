//! Verification: restore the archive's dump into a throwaway server of the same image (or binaries)
//! and compare every table and its row count with the manifest. Only then is a backup "verified".
use super::archive::{self, Stream};
use super::manifest::Verification;
use super::seams::Postgres;
use anyhow::{bail, Context as _, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Restore `dump` from the archive at `path` into a scratch server and compare with `expected`.
pub fn verify(
    pg: &dyn Postgres,
    path: &Path,
    dump: &Stream,
    expected: &BTreeMap<String, u64>,
    now: u64,
) -> Verification {
    let started = Instant::now();
    let result = run(pg, path, dump, expected);
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(rows) => Verification {
            ok: true,
            at: now,
            duration_ms,
            tables: expected.len(),
            rows,
            error: None,
        },
        Err(e) => Verification {
            ok: false,
            at: now,
            duration_ms,
            tables: expected.len(),
            rows: 0,
            error: Some(format!("{e:#}")),
        },
    }
}

fn run(
    pg: &dyn Postgres,
    path: &Path,
    dump: &Stream,
    expected: &BTreeMap<String, u64>,
) -> Result<u64> {
    let scratch = pg.scratch().context("starting the throwaway database")?;
    let db = scratch.db.database().to_string();
    scratch
        .db
        .load(&db, &mut |w| archive::extract_stream(path, dump, w))
        .context("restoring the dump into the throwaway database")?;
    let got = scratch.db.row_counts(&db)?;
    compare(expected, &got)?;
    Ok(got.values().sum())
}

/// Same tables, same row counts; the error names every difference.
pub fn compare(expected: &BTreeMap<String, u64>, got: &BTreeMap<String, u64>) -> Result<()> {
    let mut diffs = Vec::new();
    for (t, n) in expected {
        match got.get(t) {
            None => diffs.push(format!("{t} missing")),
            Some(m) if m != n => diffs.push(format!("{t}: {m} rows, expected {n}")),
            _ => {}
        }
    }
    for t in got.keys().filter(|t| !expected.contains_key(*t)) {
        diffs.push(format!("{t} not in the manifest"));
    }
    if !diffs.is_empty() {
        bail!("restored database differs: {}", diffs.join("; "));
    }
    Ok(())
}
