//! Bootstrap tasks and health probes, as catalog data (units/catalog.yaml).
//!
//! A *task* is work that must happen once the units it needs run and before the units that need its
//! result start: a one-shot container (`django_migrations.sh` in the omlapp image) or a service call
//! omlboot makes itself (bucket + user + policy on MinIO). A *probe* is how omlboot tells that a
//! component does its job, not only that its unit is active. Both carry Tera templates in their
//! strings (`{{ postgres_port }}`), rendered by the plan with the component's context.
use serde::{Deserialize, Serialize};

/// When a task runs again on a host where it already succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunWhen {
    /// Once per host, ever (the admin password reset: running it again would undo the operator's password).
    Install,
    /// Again whenever the image id it runs from changed (database migrations).
    ImageChange,
    /// Again whenever its rendered inputs changed (bucket name, user, endpoint).
    InputsChange,
    /// On every run.
    Always,
}

impl std::fmt::Display for RunWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunWhen::Install => "install",
            RunWhen::ImageChange => "image_change",
            RunWhen::InputsChange => "inputs_change",
            RunWhen::Always => "always",
        })
    }
}

/// A one-shot container: `podman run --rm --network=host --env-file <env> [-v ...] <image> <command>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerTask {
    /// Config key holding the image reference (or one with `image_default`, like components).
    pub image: String,
    #[serde(default)]
    pub image_default: Option<String>,
    pub command: Vec<String>,
    /// units/env/<env>.tera of a component on the host, read as /etc/default/<env>.
    #[serde(default)]
    pub env: Option<String>,
    /// `NAME:/path` (named volume) or `/host:/path`.
    #[serde(default)]
    pub volumes: Vec<String>,
}

/// Calls omlboot makes itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// MinIO: the bucket, the application user and the readwrite policy attached to it.
    S3Bootstrap,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    /// What the operator reads in `status` when it fails.
    pub description: String,
    pub hosts: Vec<String>,
    #[serde(default)]
    pub when: Option<String>,
    pub run: RunWhen,
    /// Runs again on the database a first-boot restore (`restore_file_timestamp`) brought back:
    /// that database was written by another host, maybe another OMniLeads version (migrations), and
    /// omldeploytool resets the admin login after its restore too.
    #[serde(default)]
    pub after_restore: bool,
    /// Components (by name) that must be active and pass their probe first; those on the host.
    #[serde(default)]
    pub after: Vec<String>,
    /// Components (by name) that start only once it succeeded: its failure blocks them.
    #[serde(default)]
    pub before: Vec<String>,
    /// Longest time for one attempt.
    #[serde(default = "default_task_timeout")]
    pub timeout_s: u64,
    /// Attempts before the task is failed (a peer on another host may still be starting).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Seconds between attempts.
    #[serde(default = "default_retry_delay")]
    pub retry_delay_s: u64,
    /// Shown by `run` and `status` once it has run (the admin login it reset).
    #[serde(default)]
    pub notice: Option<String>,
    #[serde(default)]
    pub container: Option<ContainerTask>,
    #[serde(default)]
    pub service: Option<ServiceKind>,
}

fn default_task_timeout() -> u64 {
    600
}
fn default_attempts() -> u32 {
    1
}
fn default_retry_delay() -> u64 {
    10
}

/// How to tell that a component works. Exactly one of `tcp`, `http`, `postgres`, `redis` or `exec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// `HOST:PORT` (templated), connect only.
    #[serde(default)]
    pub tcp: Option<String>,
    /// A URL (http or https); TLS certificates are not checked (the host's own are self-signed).
    #[serde(default)]
    pub http: Option<String>,
    /// The HTTP status that means healthy (nginx: 302, the login redirect).
    #[serde(default)]
    pub status: Option<u16>,
    /// `HOST:PORT` of a PostgreSQL server: healthy when it accepts connections, as `pg_isready`
    /// decides (a startup packet for `user`/`database`; any answer but "starting up" or "shutting
    /// down"), spoken from omlboot itself: a `podman exec` costs seconds on a small host.
    #[serde(default)]
    pub postgres: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub database: Option<String>,
    /// `HOST:PORT` of a Redis server: healthy when PING answers PONG (or asks for a password).
    #[serde(default)]
    pub redis: Option<String>,
    /// A command run inside the component's container (`podman exec`); exit 0 means healthy.
    #[serde(default)]
    pub exec: Option<Vec<String>>,
    /// How long after the unit went active the probe may take to pass.
    #[serde(default = "default_probe_deadline")]
    pub deadline_s: u64,
}

fn default_probe_deadline() -> u64 {
    120
}

impl ProbeSpec {
    pub fn check(&self) -> Result<(), String> {
        let kinds = self.tcp.is_some() as u8
            + self.http.is_some() as u8
            + self.postgres.is_some() as u8
            + self.redis.is_some() as u8
            + self.exec.is_some() as u8;
        if kinds != 1 {
            return Err("a probe needs exactly one of tcp, http, postgres, redis or exec".into());
        }
        if self.postgres.is_some() != (self.user.is_some() && self.database.is_some())
            || self.user.is_some() != self.database.is_some()
        {
            return Err(
                "a postgres probe needs `user` and `database`, and only it has them".into(),
            );
        }
        if self.http.is_some() != self.status.is_some() {
            return Err("an http probe needs `status`, and only http probes have one".into());
        }
        if self.exec.as_ref().is_some_and(|e| e.is_empty()) {
            return Err("exec probe with an empty command".into());
        }
        Ok(())
    }
}

impl Task {
    pub fn check(&self) -> Result<(), String> {
        match (&self.container, &self.service) {
            (Some(c), None) if c.command.is_empty() => {
                return Err("container task with an empty command".into())
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => return Err("a task is either `container:` or `service:`".into()),
        }
        if self.attempts == 0 {
            return Err("attempts must be at least 1".into());
        }
        if self.after_restore && self.service.is_some() {
            return Err(
                "after_restore is for container tasks: a service task does not write the database"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Task {
        serde_yaml_ng::from_str(&format!(
            "name: t\ndescription: d\nhosts: [aio]\nrun: install\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn after_restore_defaults_to_false_and_is_refused_on_a_service_task() {
        let c = "container: { image: omnileads_img, command: [x] }\n";
        assert!(!parse(c).after_restore);
        let t = parse(&format!("{c}after_restore: true\n"));
        assert!(t.after_restore);
        assert_eq!(t.check(), Ok(()));
        let s = parse("service: s3_bootstrap\nafter_restore: true\n");
        assert!(s.check().unwrap_err().contains("after_restore"));
        assert!(serde_yaml_ng::from_str::<Task>(
            "name: t\ndescription: d\nhosts: [aio]\nrun: install\nafter_restore: yes please\n"
        )
        .is_err());
    }
}
