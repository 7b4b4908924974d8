//! Where backups go: a [`Destination`] stores named objects (`a/b/name.tar.gz`), each put atomically
//! (a temp name, then a rename), so an interrupted upload never leaves an object under its final name.
//! Implementations: a local directory ([`dir`]), an ssh target ([`ssh`]) and S3 ([`s3`], the S3
//! client through [`ObjectStore`]).
pub mod dir;
pub mod s3;
pub mod ssh;

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Temp names end with this; they are never listed and a later run removes stale ones.
pub const PARTIAL: &str = ".partial";

pub trait Destination {
    /// Human description (no secrets), for messages and the backup record.
    fn describe(&self) -> String;
    /// Store the local file `local` as `remote`, atomically.
    fn put(&self, local: &Path, remote: &str) -> Result<()>;
    /// Store small bytes as `remote`, atomically (the manifest).
    fn put_bytes(&self, bytes: &[u8], remote: &str) -> Result<()>;
    /// Copy `remote` into the local file `local`.
    fn get(&self, remote: &str, local: &Path) -> Result<()>;
    /// Read a small object (a manifest).
    fn get_bytes(&self, remote: &str) -> Result<Vec<u8>>;
    /// Every stored object name, at any depth, temp names excluded.
    fn list(&self) -> Result<Vec<String>>;
    fn delete(&self, remote: &str) -> Result<()>;
}

/// The async S3 client ([`crate::s3::Client`]), seen through the five calls a destination needs.
/// [`s3::S3`] makes it a [`Destination`]; the adapter over the async client runs each call on a
/// current-thread runtime (put_file = put_object, multipart for large files).
pub trait ObjectStore {
    fn put_file(&self, local: &Path, key: &str) -> Result<()>;
    fn get_file(&self, key: &str, local: &Path) -> Result<()>;
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    fn delete(&self, key: &str) -> Result<()>;
}

/// A parsed `backup_destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/abs/path` or `dir:///abs/path`.
    Dir(PathBuf),
    /// `ssh://user@host[:port]/path` (path relative to the user's home unless it starts with `//`).
    Ssh {
        user: String,
        host: String,
        port: u16,
        path: String,
    },
    /// `s3://bucket/prefix` (endpoint and keys: [`crate::backup::config::S3Access`]).
    S3 { bucket: String, prefix: String },
}

impl Target {
    pub fn parse(s: &str) -> Result<Target> {
        if let Some(p) = s.strip_prefix("dir://") {
            return Self::dir(p);
        }
        if s.starts_with('/') {
            return Self::dir(s);
        }
        if let Some(rest) = s.strip_prefix("ssh://") {
            let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
            let Some((user, hostport)) = auth.split_once('@') else {
                bail!("expected ssh://user@host[:port]/path");
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| anyhow::anyhow!("bad ssh port {p:?}"))?,
                ),
                None => (hostport, 22),
            };
            if user.is_empty() || host.is_empty() {
                bail!("expected ssh://user@host[:port]/path");
            }
            let path = if let Some(abs) = path.strip_prefix('/') {
                format!("/{abs}")
            } else {
                path.to_string()
            };
            return Ok(Target::Ssh {
                user: user.into(),
                host: host.into(),
                port,
                path,
            });
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("expected s3://bucket[/prefix]");
            }
            return Ok(Target::S3 {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
            });
        }
        bail!("expected an absolute directory, dir:///path, ssh://user@host[:port]/path or s3://bucket/prefix")
    }

    fn dir(p: &str) -> Result<Target> {
        if !p.starts_with('/') {
            bail!("a directory destination must be an absolute path");
        }
        Ok(Target::Dir(PathBuf::from(p)))
    }
}

/// A relative object name must stay inside the destination.
pub(crate) fn check_name(remote: &str) -> Result<()> {
    if remote.is_empty()
        || remote.starts_with('/')
        || remote
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("invalid object name {remote:?}");
    }
    Ok(())
}

/// Path template: `{tenant} {year} {month} {day} {weekday} {hour} {timestamp}` (UTC; weekday 1–7,
/// Monday = 1, as the ERA controller; month, day, hour two digits).
pub fn render_template(template: &str, tenant: &str, unix: u64) -> String {
    let t = super::schedule::Utc::from_unix(unix);
    template
        .replace("{tenant}", tenant)
        .replace("{year}", &format!("{:04}", t.year))
        .replace("{month}", &format!("{:02}", t.month))
        .replace("{day}", &format!("{:02}", t.day))
        .replace("{weekday}", &t.weekday.to_string())
        .replace("{hour}", &format!("{:02}", t.hour))
        .replace("{timestamp}", &unix.to_string())
        .split('/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Placeholders a template may use.
pub const TEMPLATE_WORDS: &[&str] = &[
    "tenant",
    "year",
    "month",
    "day",
    "weekday",
    "hour",
    "timestamp",
];

/// Check a template: known placeholders only, no `..`, relative.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else {
            return Err("unclosed `{`".into());
        };
        let word = &rest[i + 1..i + j];
        if !TEMPLATE_WORDS.contains(&word) {
            return Err(format!(
                "unknown placeholder {{{word}}}; known: {}",
                TEMPLATE_WORDS
                    .iter()
                    .map(|w| format!("{{{w}}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        rest = &rest[i + j + 1..];
    }
    if template.starts_with('/') || template.split('/').any(|c| c == "..") {
        return Err("must be a relative path without `..`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("/srv/b").unwrap(),
            Target::Dir("/srv/b".into())
        );
        assert_eq!(
            Target::parse("dir:///srv/b").unwrap(),
            Target::Dir("/srv/b".into())
        );
        assert_eq!(
            Target::parse("ssh://bk@10.0.0.9:2222/backups/oml").unwrap(),
            Target::Ssh {
                user: "bk".into(),
                host: "10.0.0.9".into(),
                port: 2222,
                path: "backups/oml".into()
            }
        );
        assert_eq!(
            Target::parse("ssh://bk@store//srv/oml").unwrap(),
            Target::Ssh {
                user: "bk".into(),
                host: "store".into(),
                port: 22,
                path: "/srv/oml".into()
            }
        );
        assert!(Target::parse("ssh://store/x").is_err());
        assert!(Target::parse("relative/dir").is_err());
        assert!(Target::parse("s3:///x").is_err());
    }

    #[test]
    fn templates() {
        // 2024-03-05 07:08:09 UTC is a Tuesday.
        let t = 1_709_622_489;
        assert_eq!(
            render_template(
                "backup/{tenant}/{year}/{month}/{day}/dow_{weekday}/h{hour}/{timestamp}",
                "acme",
                t
            ),
            "backup/acme/2024/03/05/dow_2/h07/1709622489"
        );
        assert!(check_template("{tenant}/{weekday}").is_ok());
        assert!(check_template("{tenant}/{week}").is_err());
        assert!(check_template("../x").is_err());
        assert!(check_template("/x").is_err());
    }
}
