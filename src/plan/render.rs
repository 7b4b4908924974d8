//! Write a plan's directories and files under a directory, exactly as apply would write them under /.
use super::{Plan, Step};
use crate::fsutil::{ensure_dir, write_atomic, Written};
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

/// Map an absolute host path under `out`.
pub fn under(out: &Path, path: &str) -> PathBuf {
    out.join(path.trim_start_matches('/'))
}

/// Returns (written, unchanged) file counts. Parent directories not in the plan are created 0755.
pub fn render(plan: &Plan, out: &Path) -> Result<(usize, usize)> {
    ensure_dir(out, 0o755)
        .or_else(|_| std::fs::create_dir_all(out).map(|_| true))
        .with_context(|| format!("creating {}", out.display()))?;
    for step in &plan.steps {
        if let Step::Directory { path, mode, .. } = step {
            ensure_dir(&under(out, path), *mode)?;
        }
    }
    let (mut written, mut unchanged) = (0, 0);
    for (path, mode, content) in plan.files() {
        let target = under(out, path);
        if let Some(parent) = target.parent() {
            if !parent.is_dir() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
        }
        match write_atomic(&target, content, mode)? {
            Written::Unchanged => unchanged += 1,
            _ => written += 1,
        }
    }
    Ok((written, unchanged))
}
