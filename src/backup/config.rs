//! The backup keys, checked together (called from config validation, so errors name the field and
//! exit 2 before anything runs) and turned into what the engine needs.
use super::dest::{self, Target};
use super::retention::Policy;
use super::schedule::Window;
use crate::config::{schema::Settings, Config};
use std::path::PathBuf;

/// Problems with the backup keys: (key, message).
pub fn check(cfg: &Config) -> Vec<(&'static str, String)> {
    let mut errs = Vec::new();
    let text = |k: &str| cfg.text(k).map(str::to_string);
    if let Some(d) = text("backup_destination") {
        match Target::parse(&d) {
            Err(e) => errs.push(("backup_destination", format!("{e:#}, got {d:?}"))),
            Ok(Target::S3 { .. }) => errs.push((
                "backup_destination",
                "s3:// destinations are not wired in this build yet; use a directory or ssh://"
                    .into(),
            )),
            Ok(Target::Ssh { .. }) if cfg.get("backup_ssh_key_file").is_none() => errs.push((
                "backup_ssh_key_file",
                "required with an ssh:// backup_destination".into(),
            )),
            Ok(_) => {}
        }
    }
    if cfg.get("backup_bucket_url").is_some() {
        if cfg.get("backup_destination").is_none() {
            errs.push(("backup_bucket_url", "S3 backups are not wired in this build yet; set backup_destination to a directory or ssh:// target".into()));
        } else {
            errs.push((
                "backup_bucket_url",
                "set either backup_bucket_url (S3) or backup_destination, not both".into(),
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
    let has_dest = cfg.get("backup_destination").is_some();
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
        Backup {
            target: s
                .backup_destination
                .as_deref()
                .and_then(|d| Target::parse(d).ok()),
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

    /// The destination, when one is configured.
    pub fn destination(&self) -> Option<Box<dyn dest::Destination>> {
        match self.target.as_ref()? {
            Target::Dir(p) => Some(Box::new(dest::dir::Dir::new(p))),
            Target::Ssh {
                user,
                host,
                port,
                path,
            } => Some(Box::new(dest::ssh::Ssh {
                user: user.clone(),
                host: host.clone(),
                port: *port,
                path: path.clone(),
                key_file: self.ssh_key_file.clone().unwrap_or_default(),
                known_hosts: self.known_hosts.clone(),
                connect_timeout_s: 10,
            })),
            Target::S3 { .. } => None,
        }
    }
}
