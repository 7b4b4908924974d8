//! The backup keys, checked together (called from config validation, so errors name the field and
//! exit 2 before anything runs) and turned into what the engine needs.
use super::dest::{self, Target};
use super::retention::Policy;
use super::schedule::Window;
use crate::config::{schema::Settings, Config};
use crate::s3::ClientConfig;
use std::path::PathBuf;

/// Problems with the backup keys: (key, message).
pub fn check(cfg: &Config) -> Vec<(&'static str, String)> {
    let mut errs = Vec::new();
    let text = |k: &str| cfg.text(k).map(str::to_string);
    let bucket_url = text("backup_bucket_url");
    let mut s3_dest = bucket_url.is_some() && cfg.get("backup_destination").is_none();
    if let Some(d) = text("backup_destination") {
        match Target::parse(&d) {
            Err(e) => errs.push(("backup_destination", format!("{e:#}, got {d:?}"))),
            Ok(Target::S3 { bucket, .. }) => {
                s3_dest = true;
                if let Some(n) = text("backup_bucket_name").filter(|n| *n != bucket) {
                    errs.push((
                        "backup_bucket_name",
                        format!("{n:?} differs from the bucket of backup_destination ({bucket:?}); set one of them"),
                    ));
                }
            }
            Ok(Target::Ssh { .. }) if cfg.get("backup_ssh_key_file").is_none() => errs.push((
                "backup_ssh_key_file",
                "required with an ssh:// backup_destination".into(),
            )),
            Ok(_) => {}
        }
        if bucket_url.is_some() && !d.starts_with("s3://") {
            errs.push((
                "backup_bucket_url",
                "the S3 endpoint of an s3:// backup_destination; it does not go with a directory or ssh:// destination".into(),
            ));
        }
    }
    if let Some(url) = &bucket_url {
        if url != "aws"
            && !((url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len()
                && !url.contains(char::is_whitespace))
        {
            errs.push((
                "backup_bucket_url",
                format!("expected `aws` or an http(s) URL, got {url:?}"),
            ));
        }
    }
    if s3_dest {
        let id = cfg.get("backup_bucket_key_id").is_some();
        let secret = cfg.get("backup_bucket_secret_key").is_some();
        if bucket_url.is_some() && !(id && secret) {
            for (k, there) in [
                ("backup_bucket_key_id", id),
                ("backup_bucket_secret_key", secret),
            ] {
                if !there {
                    errs.push((
                        k,
                        "required with backup_bucket_url (the backup bucket's credentials)".into(),
                    ));
                }
            }
        } else if id != secret {
            errs.push((
                if id {
                    "backup_bucket_secret_key"
                } else {
                    "backup_bucket_key_id"
                },
                "backup_bucket_key_id and backup_bucket_secret_key go together".into(),
            ));
        }
        if bucket_url.is_none()
            && cfg.get("backup_destination").is_some()
            && cfg.get("bucket_url").is_none()
            && cfg.text("role").is_some_and(|r| r == "app" || r == "voice")
        {
            errs.push((
                "backup_bucket_url",
                "required for an s3:// backup_destination on a host that runs no MinIO (role app or voice)".into(),
            ));
        }
    }
    if let Some(t) = text("backup_path_template") {
        if let Err(e) = dest::check_template(&t) {
            errs.push(("backup_path_template", e));
        }
    }
    let weekdays = text("backup_weekdays").unwrap_or_else(|| "*".into());
    if let Some(h) = text("backup_hours") {
        if let Err(e) = Window::parse(&weekdays, &h, 0) {
            errs.push((
                "backup_hours",
                format!(
                    "{e:#} (expected HH-HH in UTC, such as 01-04, and backup_weekdays such as 1-5)"
                ),
            ));
        }
        if cfg.get("cron_backup_hh").is_some() {
            errs.push((
                "cron_backup_hh",
                "set either cron_backup_hh (omldeploytool) or backup_hours, not both".into(),
            ));
        }
    } else if let Err(e) = Window::parse(&weekdays, "0", 0) {
        errs.push(("backup_weekdays", format!("{e:#}")));
    }
    if cfg.get("cron_backup_mm").is_some() && cfg.get("cron_backup_hh").is_none() {
        errs.push(("cron_backup_hh", "required with cron_backup_mm".into()));
    }
    let scheduled = cfg.get("backup_hours").is_some() || cfg.get("cron_backup_hh").is_some();
    let has_dest = cfg.get("backup_destination").is_some() || bucket_url.is_some();
    if scheduled && !has_dest {
        errs.push((
            "backup_destination",
            "required when a backup schedule (backup_hours or cron_backup_hh) is set".into(),
        ));
    }
    if cfg.get("restore_file_timestamp").is_some() && !has_dest {
        errs.push((
            "backup_destination",
            "required with restore_file_timestamp (where the backup is read from)".into(),
        ));
    }
    errs
}

/// The backup keys, parsed (valid config assumed: [`check`] ran).
#[derive(Debug, Clone)]
pub struct Backup {
    pub target: Option<Target>,
    pub template: String,
    pub window: Option<Window>,
    pub policy: Policy,
    pub ssh_key_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub verify: bool,
    pub work: PathBuf,
    pub restore: Option<String>,
    /// How to reach the bucket of an `s3://` destination.
    pub s3: Option<S3Access>,
}

/// Endpoint and credentials of an `s3://` destination: `backup_bucket_url` (`aws` = AWS) with
/// `backup_bucket_key_id` / `backup_bucket_secret_key`; without it the recordings' S3 (the host's
/// own MinIO at 127.0.0.1:9000, or an external `bucket_url`) with `bucket_access_key` /
/// `bucket_secret_key` unless the backup keys are given.
#[derive(Debug, Clone)]
pub struct S3Access {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    /// None: the generated `bucket_secret_key`, read from the secrets store by the caller.
    pub secret_key: Option<crate::config::Secret>,
    pub accept_invalid_certs: bool,
}

impl S3Access {
    fn from_settings(s: &Settings) -> S3Access {
        let region = s.bucket_region.clone();
        let (endpoint, own) = match (&s.backup_bucket_url, &s.bucket_url) {
            (Some(u), _) => (ClientConfig::endpoint_for_bucket_url(u, &region), false),
            (None, Some(u)) => (ClientConfig::endpoint_for_bucket_url(u, &region), true),
            (None, None) => ("http://127.0.0.1:9000".to_string(), true),
        };
        let (access_key, secret_key) = match (&s.backup_bucket_key_id, &s.backup_bucket_secret_key)
        {
            (Some(id), Some(k)) => (id.clone(), Some(k.clone())),
            _ => (s.bucket_access_key.clone(), s.bucket_secret_key.clone()),
        };
        S3Access {
            endpoint,
            region,
            access_key,
            secret_key,
            accept_invalid_certs: own && s.bucket_ssl_selfsigned,
        }
    }

    pub fn client_config(&self, secret: &str) -> ClientConfig {
        let mut c = ClientConfig::new(&self.endpoint, &self.region, &self.access_key, secret);
        c.accept_invalid_certs = self.accept_invalid_certs;
        c
    }
}

impl Backup {
    pub fn from_settings(s: &Settings) -> Backup {
        let window = match (&s.backup_hours, s.cron_backup_hh) {
            (Some(h), _) => Window::parse(&s.backup_weekdays, h, 0).ok(),
            (None, Some(hh)) => {
                Window::parse("*", &hh.to_string(), s.cron_backup_mm.unwrap_or(0) as u32).ok()
            }
            (None, None) => None,
        };
        // omldeploytool: backup_bucket_url alone means its bucket, under backup/.
        let target = match (&s.backup_destination, &s.backup_bucket_url) {
            (Some(d), _) => Target::parse(d).ok(),
            (None, Some(_)) => Some(Target::S3 {
                bucket: s
                    .backup_bucket_name
                    .clone()
                    .unwrap_or_else(|| s.bucket_name.clone()),
                prefix: "backup".into(),
            }),
            (None, None) => None,
        };
        let s3 = matches!(target, Some(Target::S3 { .. })).then(|| S3Access::from_settings(s));
        Backup {
            target,
            s3,
            template: s.backup_path_template.clone(),
            window,
            policy: Policy {
                daily: s.backup_keep_daily as usize,
                weekly: s.backup_keep_weekly as usize,
                monthly: s.backup_keep_monthly as usize,
            },
            ssh_key_file: s.backup_ssh_key_file.as_ref().map(PathBuf::from),
            known_hosts: PathBuf::from(&s.backup_ssh_known_hosts),
            verify: s.backup_verify,
            work: PathBuf::from(&s.backup_work_dir),
            restore: s.restore_file_timestamp.clone(),
        }
    }

    /// The destination, when one is configured. `generated` supplies the S3 secret key when the
    /// config leaves it to the secrets store (`bucket_secret_key` of the host's MinIO).
    pub fn destination(
        &self,
        generated: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Box<dyn dest::Destination>>> {
        let Some(target) = self.target.as_ref() else {
            return Ok(None);
        };
        Ok(Some(match target {
            Target::Dir(p) => Box::new(dest::dir::Dir::new(p)),
            Target::Ssh {
                user,
                host,
                port,
                path,
            } => Box::new(dest::ssh::Ssh {
                user: user.clone(),
                host: host.clone(),
                port: *port,
                path: path.clone(),
                key_file: self.ssh_key_file.clone().unwrap_or_default(),
                known_hosts: self.known_hosts.clone(),
                connect_timeout_s: 10,
            }),
            Target::S3 { bucket, prefix } => {
                let a = self.s3.as_ref().expect("s3 access of an s3:// target");
                let secret = match &a.secret_key {
                    Some(k) => k.expose().to_string(),
                    None => generated("bucket_secret_key").ok_or_else(|| {
                        anyhow::anyhow!(
                            "no secret key for s3://{bucket}: set backup_bucket_secret_key (or bucket_secret_key)"
                        )
                    })?,
                };
                Box::new(dest::s3::S3::connect(
                    a.client_config(&secret),
                    bucket,
                    prefix,
                )?)
            }
        }))
    }
}
