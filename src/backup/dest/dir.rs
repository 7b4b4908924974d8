//! A local directory (a mounted disk, NFS): temp name + fsync + rename + fsync of the directory.
use super::{check_name, Destination, PARTIAL};
use anyhow::{Context as _, Result};
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

pub struct Dir {
    pub root: PathBuf,
}

impl Dir {
    pub fn new(root: impl Into<PathBuf>) -> Dir {
        Dir { root: root.into() }
    }

    fn path(&self, remote: &str) -> Result<PathBuf> {
        check_name(remote)?;
        Ok(self.root.join(remote))
    }

    fn atomic(&self, remote: &str, fill: impl FnOnce(&mut File) -> io::Result<()>) -> Result<()> {
        let dest = self.path(remote)?;
        let dir = dest.parent().expect("object has a parent").to_path_buf();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = dest.file_name().unwrap().to_string_lossy();
        let tmp = dir.join(format!(".{name}.{}{PARTIAL}", std::process::id()));
        let res = (|| -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            fill(&mut f)?;
            f.flush()?;
            f.sync_all()?;
            fs::rename(&tmp, &dest)?;
            File::open(&dir)?.sync_all()
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.with_context(|| format!("writing {}", dest.display()))
    }
}

impl Destination for Dir {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, local: &Path, remote: &str) -> Result<()> {
        let mut src = File::open(local).with_context(|| format!("opening {}", local.display()))?;
        self.atomic(remote, |f| io::copy(&mut src, f).map(|_| ()))
    }

    fn put_bytes(&self, bytes: &[u8], remote: &str) -> Result<()> {
        self.atomic(remote, |f| f.write_all(bytes))
    }

    fn get(&self, remote: &str, local: &Path) -> Result<()> {
        let p = self.path(remote)?;
        fs::copy(&p, local).with_context(|| format!("copying {}", p.display()))?;
        Ok(())
    }

    fn get_bytes(&self, remote: &str) -> Result<Vec<u8>> {
        let p = self.path(remote)?;
        fs::read(&p).with_context(|| format!("reading {}", p.display()))
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if !self.root.is_dir() {
            return Ok(out);
        }
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) -> Result<()> {
            for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    walk(&p, base, out)?;
                } else if !e.file_name().to_string_lossy().ends_with(PARTIAL) {
                    out.push(p.strip_prefix(base)?.to_string_lossy().into_owned());
                }
            }
            Ok(())
        }
        walk(&self.root, &self.root, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn delete(&self, remote: &str) -> Result<()> {
        let p = self.path(remote)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", p.display()))
            }
            _ => Ok(()),
        }
    }
}
