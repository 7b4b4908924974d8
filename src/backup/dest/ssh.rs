//! An ssh target, as the ERA backup controller: `user@host:path` with a key. Files are streamed
//! through `ssh … 'cat > .NAME.partial'` and renamed into place on the server (`mv` within one
//! directory is atomic), so an interrupted upload leaves only a temp name that is never listed.
//! Only `ssh` is needed on this host and `sh`, `cat`, `mv`, `find`, `rm` on the server.
use super::{check_name, Destination, PARTIAL};
use crate::exec::blocking;
use anyhow::{Context as _, Result};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Ssh {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// Base directory on the server; relative paths are under the user's home.
    pub path: String,
    pub key_file: PathBuf,
    /// known_hosts file omlboot keeps for its destinations (accept-new: the first key seen is pinned).
    pub known_hosts: PathBuf,
    pub connect_timeout_s: u32,
}

/// Single-quote for the remote POSIX shell.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Ssh {
    fn ssh(&self, remote_cmd: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(&self.key_file)
            .args(["-p", &self.port.to_string()])
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            .args(["-o", "StrictHostKeyChecking=accept-new"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-o")
            .arg(format!("ConnectTimeout={}", self.connect_timeout_s))
            .args([
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
            ])
            .arg(format!("{}@{}", self.user, self.host))
            .arg("--")
            .arg(remote_cmd);
        c
    }

    fn remote(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.path.trim_end_matches('/'))
        }
    }

    fn upload(
        &self,
        remote: &str,
        fill: impl FnOnce(&mut dyn io::Write) -> Result<()>,
    ) -> Result<()> {
        check_name(remote)?;
        let dest = self.remote(remote);
        let (dir, file) = dest.rsplit_once('/').unwrap_or((".", &dest));
        let tmp = format!("{dir}/.{file}{PARTIAL}");
        let script = format!(
            "set -e; mkdir -p {d}; cat > {t}; sync {t} 2>/dev/null || true; mv -f {t} {f}",
            d = q(dir),
            t = q(&tmp),
            f = q(&dest)
        );
        blocking::write_stdin(&mut self.ssh(&script), fill)
            .with_context(|| format!("uploading {} to {}", remote, self.describe()))
    }
}

impl Destination for Ssh {
    fn describe(&self) -> String {
        format!(
            "ssh://{}@{}:{}/{}",
            self.user, self.host, self.port, self.path
        )
    }

    fn put(&self, local: &Path, remote: &str) -> Result<()> {
        let mut src = File::open(local).with_context(|| format!("opening {}", local.display()))?;
        self.upload(remote, |w| {
            io::copy(&mut src, w)?;
            Ok(())
        })
    }

    fn put_bytes(&self, bytes: &[u8], remote: &str) -> Result<()> {
        self.upload(remote, |w| Ok(w.write_all(bytes)?))
    }

    fn get(&self, remote: &str, local: &Path) -> Result<()> {
        check_name(remote)?;
        let mut out =
            File::create(local).with_context(|| format!("creating {}", local.display()))?;
        blocking::read_stdout(
            &mut self.ssh(&format!("cat {}", q(&self.remote(remote)))),
            |r| {
                io::copy(r, &mut out)?;
                Ok(())
            },
        )
        .with_context(|| format!("downloading {} from {}", remote, self.describe()))?;
        out.sync_all()?;
        Ok(())
    }

    fn get_bytes(&self, remote: &str) -> Result<Vec<u8>> {
        check_name(remote)?;
        let mut buf = Vec::new();
        blocking::read_stdout(
            &mut self.ssh(&format!("cat {}", q(&self.remote(remote)))),
            |r| {
                r.read_to_end(&mut buf)?;
                Ok(())
            },
        )
        .with_context(|| format!("reading {} from {}", remote, self.describe()))?;
        Ok(buf)
    }

    fn list(&self) -> Result<Vec<String>> {
        let base = if self.path.is_empty() {
            "."
        } else {
            &self.path
        };
        let script = format!(
            "cd {} 2>/dev/null || exit 0; find . -type f ! -name '*{PARTIAL}'",
            q(base)
        );
        let out = blocking::output(&mut self.ssh(&script))
            .with_context(|| format!("listing {}", self.describe()))?;
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("./"))
            .map(str::to_string)
            .collect();
        v.sort();
        Ok(v)
    }

    fn delete(&self, remote: &str) -> Result<()> {
        check_name(remote)?;
        blocking::output(&mut self.ssh(&format!("rm -f {}", q(&self.remote(remote)))))
            .with_context(|| format!("deleting {} on {}", remote, self.describe()))?;
        Ok(())
    }
}
