//! Atomic, compare-first file writes.
use anyhow::{Context as _, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Outcome of a write: whether the content or the mode had to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Unchanged,
    /// Only the mode differed and was fixed in place.
    ModeFixed,
    Changed,
}

/// Write `content` to `path` with `mode`, atomically: a temp file in the same directory is written,
/// fsynced and renamed over the target, then the directory is fsynced. Identical content is left alone,
/// so a re-run does not touch mtimes (and so restarts nothing).
///
/// On any failure (read-only or full filesystem, …) the error names `path`, the temp file is
/// removed and the previous file is left as it was. Temp files that a killed run left beside
/// `path` are removed first.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<Written> {
    write_atomic_then(path, content, mode, || Ok(()))
}

/// [`write_atomic`], calling `before_change` once it knows the content changes and before it writes
/// (apply records what the change will owe first, so a kill after the write still owes it).
pub fn write_atomic_then(
    path: &Path,
    content: &[u8],
    mode: u32,
    before_change: impl FnOnce() -> Result<()>,
) -> Result<Written> {
    if let Ok(existing) = fs::read(path) {
        if existing == content {
            let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
            if meta.permissions().mode() & 0o7777 == mode {
                return Ok(Written::Unchanged);
            }
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {}", path.display()))?;
            return Ok(Written::ModeFixed);
        }
    }
    before_change()?;
    let dir = path.parent().context("path has no parent directory")?;
    let name = path
        .file_name()
        .context("path has no file name")?
        .to_string_lossy();
    remove_stale_temps(dir, &name);
    let tmp = dir.join(temp_name(&name, std::process::id()));
    let result = (|| -> Result<()> {
        // Created with the final mode so a secret is never readable by others, even for an instant.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .context("chmod of the temp file")?;
        f.write_all(content).context("writing the temp file")?;
        f.sync_all().context("fsync of the temp file")?;
        drop(f);
        fs::rename(&tmp, path).context("renaming the temp file into place")?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync of {}", dir.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
        .with_context(|| format!("writing {}", path.display()))
        .map(|_| Written::Changed)
}

/// `.NAME.omlboot-PID`: hidden, beside the target (same filesystem, so the rename is atomic).
fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.omlboot-{pid}")
}

/// Remove `.NAME.omlboot-PID` files of processes that no longer run (a run killed mid-write).
/// Best effort: what cannot be removed is left, and the write goes on.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.omlboot-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Create a directory (and parents) and set its mode. Returns true when something changed.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<bool> {
    let mut changed = false;
    if !path.is_dir() {
        fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        changed = true;
    }
    let current = fs::metadata(path)?.permissions().mode() & 0o7777;
    if current != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
        changed = true;
    }
    Ok(changed)
}

/// A JSON record omlboot keeps (state, upgrade journal, backup record): `None` when absent.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(
            serde_json::from_str(&t).with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write a JSON record atomically, 0600 root in a 0700 directory: records may quote journal lines.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        ensure_dir(dir, 0o700)?;
    }
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes(), 0o600)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_first_and_modes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.env");
        assert_eq!(write_atomic(&p, b"A=1\n", 0o600).unwrap(), Written::Changed);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mtime = fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(
            write_atomic(&p, b"A=1\n", 0o600).unwrap(),
            Written::Unchanged
        );
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), mtime);
        assert_eq!(
            write_atomic(&p, b"A=1\n", 0o644).unwrap(),
            Written::ModeFixed
        );
        assert_eq!(write_atomic(&p, b"A=2\n", 0o644).unwrap(), Written::Changed);
        assert_eq!(fs::read(&p).unwrap(), b"A=2\n");
        // No temp file left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temp_files_of_dead_runs_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.env");
        // pid_max is at most 2^22: this pid cannot be running.
        let stale = d.path().join(temp_name("x.env", 4_194_304 + 7));
        let other = d.path().join(temp_name("y.env", 4_194_304 + 7));
        fs::write(&stale, b"half").unwrap();
        fs::write(&other, b"half").unwrap();
        assert_eq!(write_atomic(&p, b"A=1\n", 0o600).unwrap(), Written::Changed);
        assert!(!stale.exists(), "stale temp file left");
        assert!(other.exists(), "another file's temp file was touched");
    }
}
