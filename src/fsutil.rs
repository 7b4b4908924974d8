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
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<Written> {
    if let Ok(existing) = fs::read(path) {
        if existing == content {
            let meta = fs::metadata(path)?;
            if meta.permissions().mode() & 0o7777 == mode {
                return Ok(Written::Unchanged);
            }
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {}", path.display()))?;
            return Ok(Written::ModeFixed);
        }
    }
    let dir = path.parent().context("path has no parent directory")?;
    let name = path
        .file_name()
        .context("path has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.omlboot-{}", std::process::id()));
    let result = (|| -> Result<()> {
        // Created with the final mode so a secret is never readable by others, even for an instant.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|_| Written::Changed)
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
}
