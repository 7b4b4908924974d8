//! Container images: make sure every image the units need is in local podman storage.
//!
//! [`pull`] fetches from registries, [`store`] reads local storage (one listing for all references),
//! [`bundle`] loads an offline bundle; the engine reaches them through [`super::seams::ImageStore`].
//!
//! omlboot is one static binary and there is no podman library to link, so everything here shells
//! out to `podman`. Online, [`ensure`] skips what is already present and pulls the rest with
//! bounded parallelism, retrying only errors that may go away on their own (see [`classify`]).
//! Offline, [`load_bundle`] loads a tar of OCI archives (the format is described on [`load_bundle`]).
//!
//! Two podman facts shape the code:
//! - podman 4.3 (Debian 12) has no `--retry` flag and retries network errors itself, three times
//!   one second apart (about 3 s), before giving up. Newer podman has `--retry`; when the installed
//!   one has it we pass `--retry 0` so the retry policy (count, backoff, which errors) is ours alone.
//! - An image is skipped when its reference is already in local storage. A mutable tag such as
//!   `:latest` is therefore never refreshed by `ensure`; pin tags (or digests) in the catalog.

pub mod bundle;
pub mod pull;
pub mod store;

pub use bundle::{load_bundle, BundleImage, BundleIndex};
pub use pull::{classify, ensure};
pub use store::image_id;

use crate::retry::Retry;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Upper bound of the doubling backoff between pull attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Name of the index file at the top level of an offline bundle (see [`load_bundle`]).
pub const BUNDLE_INDEX: &str = "omlboot-images.json";

/// How to reach podman and the registries.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// The podman binary (`podman`, looked up in PATH).
    pub podman: PathBuf,
    /// How many pulls may run at once (at least 1). Three keeps a small VM's disk and link busy
    /// without making every pull slow.
    pub parallel: usize,
    /// Retries after the first attempt, for transient errors only.
    pub retries: u32,
    /// First wait between attempts; doubles after each attempt, capped at [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// Registry credentials file (`--authfile`). Only its path is ever logged; omlboot never reads it.
    pub auth_file: Option<PathBuf>,
    /// `false` passes `--tls-verify=false` (plain-http or self-signed registries). `true` passes
    /// nothing, so a registry marked insecure in registries.conf keeps working.
    pub tls_verify: bool,
    /// Global podman options put before the subcommand, e.g. `--root DIR --runroot DIR
    /// --storage-driver vfs` to work on a private image store (the tests do this).
    pub extra_args: Vec<String>,
    /// Kill one pull attempt that runs longer than this and count it as transient. podman itself
    /// has no overall deadline, and a stalled connection would otherwise hang first boot.
    pub attempt_timeout: Option<Duration>,
    /// Where [`load_bundle`] unpacks archives, one at a time. `/var/tmp` by default because it is
    /// disk-backed (podman uses it for the same reason); `/tmp` may be a small tmpfs.
    pub tmp_dir: PathBuf,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            podman: PathBuf::from("podman"),
            parallel: 3,
            retries: 4,
            backoff: Duration::from_secs(2),
            auth_file: None,
            tls_verify: true,
            extra_args: Vec::new(),
            attempt_timeout: Some(Duration::from_secs(30 * 60)),
            tmp_dir: PathBuf::from("/var/tmp"),
        }
    }
}

/// Why an image could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// The registry refused the credentials (or wanted some). Not retried.
    Auth,
    /// The repository or tag does not exist. Not retried.
    NotFound,
    /// Network or registry trouble that may pass: refused/reset connections, timeouts, 5xx, 429.
    /// Retried with backoff.
    Transient,
    /// Anything else (bad reference, TLS misconfiguration, local storage errors, missing podman).
    /// Not retried: another attempt would fail the same way.
    Other,
}

/// What happened to one image. Ids are podman image ids (64 hex digits, no `sha256:` prefix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ImageOutcome {
    /// Already in local storage under this reference; nothing was fetched.
    Present { id: String },
    /// Pulled from the registry; `attempts` counts our attempts (1 = first try worked).
    Pulled { id: String, attempts: u32 },
    /// Loaded from an offline bundle and tagged with the reference.
    Loaded { id: String },
    /// Not available. `message` is podman's error with a hint; it never holds credentials.
    Failed {
        kind: FailKind,
        message: String,
        attempts: u32,
    },
}

impl ImageOutcome {
    /// The image id when the image is now in local storage.
    pub fn id(&self) -> Option<&str> {
        match self {
            ImageOutcome::Present { id }
            | ImageOutcome::Pulled { id, .. }
            | ImageOutcome::Loaded { id } => Some(id),
            ImageOutcome::Failed { .. } => None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.id().is_some()
    }
}

impl ImageOptions {
    pub fn retry(&self) -> Retry {
        Retry::new(self.retries, self.backoff).max_delay(MAX_BACKOFF)
    }

    pub(crate) fn podman(&self) -> Command {
        let mut cmd = Command::new(&self.podman);
        cmd.args(&self.extra_args)
            // Never let podman ask anything (short-name prompts need a TTY on stdin).
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `podman image exists`: Ok(true/false), or Err when podman itself failed (exit other than 0/1).
    pub async fn exists(&self, reference: &str) -> Result<bool, String> {
        let out = self
            .podman()
            .args(["image", "exists", reference])
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.podman.display()))?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(pull::last_error_line(&String::from_utf8_lossy(&out.stderr))),
        }
    }

    /// Id of the image `reference` points to in this store, or None when it is not there.
    pub async fn image_id(&self, reference: &str) -> Option<String> {
        let out = self
            .podman()
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .await
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        store::is_image_id(&id).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_waits_double_from_two_seconds_up_to_the_cap() {
        let retry = ImageOptions::default().retry();
        assert_eq!(retry.attempts(), 5);
        let waits: Vec<u64> = (1..=6).map(|n| retry.delay(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
    }
}
