//! What must be true on the host: an ordered list of steps, built purely from config, facts and catalog.
//! It prints as a table or JSON (secrets never included) and `render` writes its files under a directory.
mod build;
pub mod render;
pub mod secrets;

pub use build::build;

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct HostSummary {
    pub role: String,
    pub layout: String,
    pub private_ip: String,
    pub public_ip: String,
    pub infra_env: String,
    pub nic: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedComponent {
    pub name: String,
    pub unit: String,
    pub image: String,
    /// Files whose change means the unit must restart (unit file, env file, mounted config).
    pub files: Vec<String>,
    /// Its failure makes the host degraded, not failed (catalog `optional:`).
    pub optional: bool,
    /// The container's name (probes and call counts run inside it).
    pub container: String,
    /// How omlboot tells it works, once its unit is active.
    pub probe: Option<Probe>,
    /// How many calls it carries (voice): a restart waits for them to end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<crate::catalog::CallsSpec>,
    /// A database dump is taken before its image changes (restored by its rollback).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dump_before_upgrade: bool,
}

/// A component's health probe, rendered for this host.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Probe {
    Tcp {
        address: String,
        deadline_s: u64,
    },
    Http {
        url: String,
        status: u16,
        deadline_s: u64,
    },
    Postgres {
        address: String,
        user: String,
        database: String,
        deadline_s: u64,
    },
    Redis {
        address: String,
        deadline_s: u64,
    },
    Exec {
        container: String,
        command: Vec<String>,
        deadline_s: u64,
    },
}

impl Probe {
    pub fn deadline(&self) -> std::time::Duration {
        let s = match self {
            Probe::Tcp { deadline_s, .. }
            | Probe::Http { deadline_s, .. }
            | Probe::Postgres { deadline_s, .. }
            | Probe::Redis { deadline_s, .. }
            | Probe::Exec { deadline_s, .. } => *deadline_s,
        };
        std::time::Duration::from_secs(s)
    }
    /// One line for tables and status.
    pub fn describe(&self) -> String {
        match self {
            Probe::Tcp { address, .. } => format!("tcp {address}"),
            Probe::Http { url, status, .. } => format!("http {url} → {status}"),
            Probe::Postgres {
                address,
                user,
                database,
                ..
            } => format!("postgres {user}@{address}/{database}"),
            Probe::Redis { address, .. } => format!("redis {address} PING"),
            Probe::Exec { command, .. } => format!("exec {}", command.join(" ")),
        }
    }
}

/// A bootstrap task, rendered for this host.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedTask {
    pub name: String,
    pub description: String,
    pub run: crate::catalog::tasks::RunWhen,
    /// Runs again after a first-boot restore, on the restored database (catalog `after_restore`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub after_restore: bool,
    /// Components of this host it waits for (active and probed).
    pub after: Vec<String>,
    /// Components of this host it blocks when it fails.
    pub before: Vec<String>,
    pub timeout_s: u64,
    pub attempts: u32,
    pub retry_delay_s: u64,
    pub action: TaskAction,
    /// sha256 of the task's inputs (secrets only through their own hash): `run: inputs_change` compares it.
    pub fingerprint: String,
    /// For the operator once it has run.
    pub notice: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskAction {
    /// `podman run --rm --network=host [--env-file F] [-v V]... IMAGE COMMAND...`
    Container {
        image: String,
        command: Vec<String>,
        env_file: Option<String>,
        volumes: Vec<String>,
    },
    /// Bucket, application user and its readwrite policy on the host's MinIO.
    S3Bootstrap {
        endpoint: String,
        region: String,
        bucket: String,
        access_key: String,
        secret_key: crate::config::Secret,
        root_user: String,
        root_password: crate::config::Secret,
    },
}

impl TaskAction {
    /// The image it runs from, if any.
    pub fn image(&self) -> Option<&str> {
        match self {
            TaskAction::Container { image, .. } => Some(image),
            TaskAction::S3Bootstrap { .. } => None,
        }
    }

    /// A container task with no volume writes nowhere on the host: what it changed (the database)
    /// a dump taken before it brings back.
    pub fn mounts_nothing(&self) -> bool {
        matches!(self, TaskAction::Container { volumes, .. } if volumes.is_empty())
    }
}

/// One step. Files carry their content for `render`/`apply`, but it is never serialized.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Packages {
        /// family (apt, dnf) → package names; both families when the OS is not known yet.
        by_family: BTreeMap<String, Vec<String>>,
    },
    Directory {
        path: String,
        #[serde(serialize_with = "octal")]
        mode: u32,
        owner: String,
    },
    File {
        path: String,
        #[serde(serialize_with = "octal")]
        mode: u32,
        owner: String,
        sha256: String,
        size: usize,
        /// Holds a secret: written 0600 root, content never shown.
        secret: bool,
        component: Option<String>,
        #[serde(skip)]
        content: Vec<u8>,
    },
    Tls {
        source: String,
        cert: String,
        key: String,
        /// Subject alternative names of a self-signed certificate.
        sans: Vec<String>,
        /// certs=custom: the operator's files to install.
        from: Option<(String, String)>,
    },
    Timezone {
        tz: String,
    },
    Image {
        reference: String,
        components: Vec<String>,
    },
    DaemonReload,
    Enable {
        units: Vec<String>,
    },
    Start {
        unit: String,
        component: String,
    },
    /// A bootstrap task: after the start steps of the units it needs, before those that need it.
    Task(PlannedTask),
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub host: HostSummary,
    pub components: Vec<PlannedComponent>,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
}

impl Plan {
    /// Names of the components whose failure only degrades the host.
    pub fn optional_components(&self) -> Vec<&str> {
        self.components
            .iter()
            .filter(|c| c.optional)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The bootstrap tasks, in plan order.
    pub fn tasks(&self) -> impl Iterator<Item = &PlannedTask> {
        self.steps.iter().filter_map(|s| match s {
            Step::Task(t) => Some(t),
            _ => None,
        })
    }

    /// Human-readable table, one line per step.
    pub fn table(&self) -> String {
        let h = &self.host;
        let mut out = format!(
            "role {} ({}), private IP {}{}, public IP {}, infra_env {}\n",
            h.role,
            h.layout,
            h.private_ip,
            h.nic
                .as_deref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default(),
            h.public_ip,
            h.infra_env
        );
        let rows: Vec<(String, String, String)> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Packages { by_family } => (
                    "packages".into(),
                    by_family.keys().cloned().collect::<Vec<_>>().join("|"),
                    by_family
                        .values()
                        .next()
                        .map(|v| v.join(" "))
                        .unwrap_or_default(),
                ),
                Step::Directory { path, mode, owner } => (
                    "directory".into(),
                    path.clone(),
                    format!("{mode:04o} {owner}"),
                ),
                Step::File {
                    path,
                    mode,
                    owner,
                    sha256,
                    secret,
                    ..
                } => (
                    "file".into(),
                    path.clone(),
                    format!(
                        "{mode:04o} {owner}{} sha256:{}",
                        if *secret { " secret" } else { "" },
                        &sha256[..12]
                    ),
                ),
                Step::Tls {
                    source, cert, sans, ..
                } => (
                    "tls".into(),
                    cert.clone(),
                    format!(
                        "{source}{}",
                        if sans.is_empty() {
                            String::new()
                        } else {
                            format!(" SAN {}", sans.join(","))
                        }
                    ),
                ),
                Step::Timezone { tz } => ("timezone".into(), tz.clone(), String::new()),
                Step::Image {
                    reference,
                    components,
                } => ("image".into(), reference.clone(), components.join(",")),
                Step::DaemonReload => ("reload".into(), "systemd".into(), "daemon-reload".into()),
                Step::Enable { units } => (
                    "enable".into(),
                    format!("{} units", units.len()),
                    units.join(" "),
                ),
                Step::Start { unit, component } => {
                    ("start".into(), unit.clone(), component.clone())
                }
                Step::Task(t) => (
                    "task".into(),
                    t.name.clone(),
                    format!(
                        "{} {}",
                        t.run,
                        match &t.action {
                            TaskAction::Container { command, .. } => command.join(" "),
                            TaskAction::S3Bootstrap {
                                bucket, endpoint, ..
                            } => format!("bucket {bucket} at {endpoint}"),
                        }
                    ),
                ),
            })
            .collect();
        let w1 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w2 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (i, (a, b, c)) in rows.iter().enumerate() {
            let _ = writeln!(out, "{:>3}  {a:<w1$}  {b:<w2$}  {c}", i + 1);
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }

    pub fn files(&self) -> impl Iterator<Item = (&str, u32, &[u8])> {
        self.steps.iter().filter_map(|s| match s {
            Step::File {
                path,
                mode,
                content,
                ..
            } => Some((path.as_str(), *mode, content.as_slice())),
            _ => None,
        })
    }
}
