//! Container images: make sure every image the units need is in local podman storage.
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

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

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
    fn podman(&self) -> Command {
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
            _ => Err(last_error_line(&String::from_utf8_lossy(&out.stderr))),
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
        is_image_id(&id).then_some(id)
    }
}

/// Id of the local image `reference` (`podman image inspect --format {{.Id}}`), or None when it is
/// not in the default store. Units compare this before and after apply to decide whether to restart.
/// Use [`ImageOptions::image_id`] for a store chosen with `extra_args`.
pub async fn image_id(podman: &Path, reference: &str) -> Option<String> {
    let opts = ImageOptions {
        podman: podman.to_path_buf(),
        ..ImageOptions::default()
    };
    opts.image_id(reference).await
}

/// Make every reference in `refs` present locally. Duplicates are handled once; the result has one
/// entry per distinct reference, in first-seen order. Never fails as a whole: each image gets its
/// own outcome, so the caller can start every unit whose image is there.
pub async fn ensure(refs: &[String], opts: &ImageOptions) -> Vec<(String, ImageOutcome)> {
    let mut seen = HashSet::new();
    let unique: Vec<String> = refs
        .iter()
        .filter(|r| seen.insert(r.as_str()))
        .cloned()
        .collect();
    // Probed once, and only if something must be pulled: a converged host runs no extra podman.
    let retry_flag = Arc::new(tokio::sync::OnceCell::new());
    let opts = Arc::new(opts.clone());
    let permits = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let mut tasks = JoinSet::new();
    for (index, reference) in unique.iter().cloned().enumerate() {
        let opts = Arc::clone(&opts);
        let permits = Arc::clone(&permits);
        let retry_flag = Arc::clone(&retry_flag);
        tasks.spawn(async move {
            let outcome = ensure_one(&reference, &opts, &permits, &retry_flag).await;
            (index, outcome)
        });
    }
    let mut outcomes: Vec<Option<ImageOutcome>> = vec![None; unique.len()];
    while let Some(joined) = tasks.join_next().await {
        // A task only ends without a value if it panicked; there is no index to file that under,
        // and the slot stays None, reported below.
        if let Ok((index, outcome)) = joined {
            outcomes[index] = Some(outcome);
        }
    }
    unique
        .into_iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let o = o.unwrap_or_else(|| ImageOutcome::Failed {
                kind: FailKind::Other,
                message: "internal error: pull task panicked".into(),
                attempts: 0,
            });
            (r, o)
        })
        .collect()
}

async fn ensure_one(
    reference: &str,
    opts: &ImageOptions,
    permits: &Semaphore,
    retry_flag: &tokio::sync::OnceCell<bool>,
) -> ImageOutcome {
    if let Err(message) = check_reference(reference) {
        return ImageOutcome::Failed {
            kind: FailKind::Other,
            message,
            attempts: 0,
        };
    }
    // The presence check is cheap and local, so it does not take a pull slot.
    match opts.exists(reference).await {
        Ok(true) => {
            if let Some(id) = opts.image_id(reference).await {
                tracing::debug!(reference, %id, "image present");
                return ImageOutcome::Present { id };
            }
            // Removed between the two calls: fall through and pull.
        }
        Ok(false) => {}
        Err(message) => {
            return ImageOutcome::Failed {
                kind: FailKind::Other,
                message: format!("checking local storage for {reference}: {message}"),
                attempts: 0,
            }
        }
    }
    let Ok(_permit) = permits.acquire().await else {
        unreachable!("the semaphore is never closed");
    };
    let retry_flag = *retry_flag.get_or_init(|| supports_retry_flag(opts)).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let result = pull_once(reference, opts, retry_flag).await;
        match result {
            Ok(id) => {
                tracing::info!(reference, %id, attempts = attempt, elapsed_ms = started.elapsed().as_millis() as u64, "image pulled");
                return ImageOutcome::Pulled {
                    id,
                    attempts: attempt,
                };
            }
            Err((FailKind::Transient, message)) if attempt <= opts.retries => {
                let wait = backoff_delay(opts.backoff, attempt);
                tracing::warn!(reference, attempt, retry_in_ms = wait.as_millis() as u64, error = %message, "transient pull failure, retrying");
                tokio::time::sleep(wait).await;
            }
            Err((kind, message)) => {
                tracing::error!(reference, attempts = attempt, ?kind, error = %message, "image pull failed");
                return ImageOutcome::Failed {
                    kind,
                    message,
                    attempts: attempt,
                };
            }
        }
    }
}

/// One `podman pull`. Ok(image id) or Err((kind, message for humans)).
async fn pull_once(
    reference: &str,
    opts: &ImageOptions,
    retry_flag: bool,
) -> Result<String, (FailKind, String)> {
    let mut cmd = opts.podman();
    cmd.args(["pull", "--quiet"]);
    if retry_flag {
        cmd.args(["--retry", "0"]);
    }
    if !opts.tls_verify {
        cmd.arg("--tls-verify=false");
    }
    if let Some(auth) = &opts.auth_file {
        cmd.arg("--authfile").arg(auth);
    }
    cmd.arg(reference);
    let child = cmd.output();
    let out = match opts.attempt_timeout {
        Some(limit) => match tokio::time::timeout(limit, child).await {
            Ok(r) => r,
            // Dropping the future kills podman (kill_on_drop).
            Err(_) => {
                return Err((
                    FailKind::Transient,
                    format!("pull of {reference} did not finish within {limit:?}"),
                ))
            }
        },
        None => child.await,
    };
    let out = out.map_err(|e| {
        (
            FailKind::Other,
            format!("cannot run {}: {e}", opts.podman.display()),
        )
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let kind = classify(&stderr);
        return Err((kind, describe(kind, reference, &stderr, opts)));
    }
    // `pull --quiet` prints the image id; ask storage if it printed something else (a future
    // podman, a manifest list) so the id is always the one the reference now points to.
    let printed = String::from_utf8_lossy(&out.stdout);
    let printed = printed.lines().rev().find(|l| !l.trim().is_empty());
    match printed.map(str::trim).filter(|l| is_image_id(l)) {
        Some(id) => Ok(id.to_string()),
        None => opts.image_id(reference).await.ok_or_else(|| {
            (
                FailKind::Other,
                format!("podman pulled {reference} but it is not in local storage"),
            )
        }),
    }
}

/// Does this podman have `pull --retry` (podman ≥ 5)? Then we turn its own retries off.
async fn supports_retry_flag(opts: &ImageOptions) -> bool {
    let out = opts.podman().args(["pull", "--help"]).output().await;
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout).contains("--retry "),
        Err(_) => false,
    }
}

fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// Sort podman's stderr from a failed pull into a [`FailKind`].
///
/// Only podman's final `Error:` line is read: podman 4.3 logs its own internal retries as warnings
/// first, and those repeat the transient error even when the final one is something else.
/// Order matters: local problems (permission denied, missing auth file) are checked before the
/// registry's words, so "permission denied" on a local file is not taken for an auth refusal.
pub fn classify(stderr: &str) -> FailKind {
    let line = last_error_line(stderr).to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| line.contains(n));
    if has(&[
        "permission denied",
        "no such file or directory",
        "no space left on device",
        "read-only file system",
        "short-name",
        "invalid reference format",
        "x509:",
        "certificate",
        "server gave http response to https client",
    ]) {
        return FailKind::Other;
    }
    if has(&[
        "unauthorized",
        "authentication required",
        "denied",
        "invalid username/password",
        "incorrect username or password",
        "401 unauthorized",
        "403 forbidden",
    ]) {
        return FailKind::Auth;
    }
    if has(&[
        "manifest unknown",
        "name unknown",
        "not found",
        "404",
        "repository does not exist",
        "no image found in manifest list",
    ]) {
        return FailKind::NotFound;
    }
    if has(&[
        "connection refused",
        "connection reset",
        "broken pipe",
        "timeout",
        "timed out",
        "i/o timeout",
        "tls handshake",
        "unexpected eof",
        ": eof",
        "no route to host",
        "network is unreachable",
        "temporary failure in name resolution",
        "no such host",
        "server misbehaving",
        "too many requests",
        "toomanyrequests",
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
        "http2: ",
    ]) || has_5xx_or_429(&line)
    {
        return FailKind::Transient;
    }
    FailKind::Other
}

/// "status 503", "status code from registry 502", "status: 500": a 5xx or 429 right after the word
/// "status" (plain digit matching would catch ports and digests).
fn has_5xx_or_429(line: &str) -> bool {
    let mut rest = line;
    while let Some(pos) = rest.find("status") {
        rest = &rest[pos + "status".len()..];
        let tail = rest.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '\n');
        let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
        // Only look a few characters ahead: "status code from registry 503" is as far as it goes.
        if rest.len() - tail.len() <= 24
            && digits.len() == 3
            && (digits.starts_with('5') || digits == "429")
        {
            return true;
        }
    }
    false
}

/// The last `Error: ...` line podman printed, without the prefix; or the last non-empty line.
fn last_error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    if let Some(l) = lines.iter().rev().find(|l| l.starts_with("Error: ")) {
        return l.trim_start_matches("Error: ").to_string();
    }
    lines
        .iter()
        .rev()
        .find(|l| !l.is_empty())
        .map(|l| l.to_string())
        .unwrap_or_else(|| "podman failed without a message".into())
}

fn describe(kind: FailKind, reference: &str, stderr: &str, opts: &ImageOptions) -> String {
    let detail = redact_urls(&last_error_line(stderr));
    let detail: String = detail.chars().take(600).collect();
    match kind {
        FailKind::Auth => {
            let creds = match &opts.auth_file {
                Some(p) => format!("credentials from {}", p.display()),
                None => "no credentials file configured".to_string(),
            };
            format!("registry refused access to {reference} ({creds}): {detail}")
        }
        FailKind::NotFound => format!("{reference} does not exist in its registry: {detail}"),
        FailKind::Transient => format!("registry unreachable or failing for {reference}: {detail}"),
        FailKind::Other => format!("cannot pull {reference}: {detail}"),
    }
}

/// Drop query strings from URLs: a blob redirect to object storage carries signed tokens there.
fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut in_url, mut dropping) = (false, false);
    for (i, c) in s.char_indices() {
        if !in_url && (s[i..].starts_with("http://") || s[i..].starts_with("https://")) {
            in_url = true;
        }
        if in_url && (c.is_whitespace() || c == '"' || c == '\'') {
            in_url = false;
            dropping = false;
        }
        if in_url && c == '?' && !dropping {
            dropping = true;
            out.push_str("?<redacted>");
        }
        if !dropping {
            out.push(c);
        }
    }
    out
}

fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reject what podman would take as an option, and blanks; podman checks the rest.
fn check_reference(reference: &str) -> Result<(), String> {
    if reference.is_empty() || reference.starts_with('-') || reference.contains(char::is_whitespace)
    {
        return Err(format!("invalid image reference {reference:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Offline bundles

/// The bundle's index: `omlboot-images.json` at the top level of the bundle tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleIndex {
    /// Format version; only 1 exists.
    pub version: u32,
    pub images: Vec<BundleImage>,
}

/// One image of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleImage {
    /// The reference the units use, e.g. `docker.io/omnileads/omlapp:2.4.0`; the image is tagged so.
    pub reference: String,
    /// Path of the archive inside the bundle tar (relative, no `..`). Several references may share one.
    pub archive: String,
    /// Optional sha256 (hex) of the archive file; checked before loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Optional image id (hex, `sha256:` prefix allowed). When the reference already points to
    /// this id the archive is not even unpacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Load images from an offline bundle into local storage, tagging each with its reference.
///
/// # Bundle format (version 1)
/// A plain (uncompressed) tar holding, at its top level:
/// - `omlboot-images.json`:
///   ```json
///   {"version": 1,
///    "images": [
///      {"reference": "docker.io/omnileads/omlapp:2.4.0", "archive": "omlapp.tar",
///       "sha256": "<optional: sha256 of omlapp.tar>", "id": "<optional: image id>"}
///    ]}
///   ```
/// - one archive per image, as written by `podman save --format oci-archive -o omlapp.tar REF`
///   (a `docker-archive` from plain `podman save` is accepted too). One image per archive.
///
/// Build one with:
/// ```sh
/// podman save --format oci-archive -o omlapp.tar docker.io/omnileads/omlapp:2.4.0
/// # ... one per image, then write omlboot-images.json (sha256sum / podman image inspect
/// # --format '{{.Id}}' give the optional fields)
/// tar -cf bundle.tar omlboot-images.json omlapp.tar ...
/// ```
///
/// # Behaviour
/// The index is read first (tar entries are skipped by seeking, so this is fast on a large
/// bundle). An image whose reference already points to the index's `id` is left alone. The others'
/// archives are unpacked one at a time into a private 0700 directory under `opts.tmp_dir`, checked
/// against `sha256`, compared with local storage (an archive's image id is its config digest, so
/// an unchanged image is again left alone: `Present`), otherwise loaded with
/// `podman pull oci-archive:FILE` and tagged with `podman tag ID REFERENCE` (`Loaded`), then
/// deleted before the next one is unpacked, so the extra disk needed is one archive, not the bundle.
///
/// Errors: an unreadable bundle, a missing or invalid index, or a corrupt tar is an `Err`; a
/// problem with one image (bad checksum, archive missing from the tar, podman refusing the
/// archive) is that image's `Failed { kind: Other, .. }`.
pub async fn load_bundle(
    bundle: &Path,
    opts: &ImageOptions,
) -> anyhow::Result<Vec<(String, ImageOutcome)>> {
    let path = bundle.to_path_buf();
    let index = tokio::task::spawn_blocking(move || read_index(&path))
        .await
        .context("index reader panicked")?
        .with_context(|| format!("reading bundle {}", bundle.display()))?;

    let mut outcomes: Vec<Option<ImageOutcome>> = vec![None; index.images.len()];
    // archive path in the tar → indexes of the images it holds
    let mut needed: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, img) in index.images.iter().enumerate() {
        let local = opts.image_id(&img.reference).await;
        match (&local, img.id.as_deref().map(strip_sha256)) {
            (Some(have), Some(want)) if have == want => {
                outcomes[i] = Some(ImageOutcome::Present { id: have.clone() })
            }
            _ => needed
                .entry(normalize_entry(Path::new(&img.archive)).expect("validated"))
                .or_default()
                .push(i),
        }
    }
    if !needed.is_empty() {
        let tmp = TempDir::create(&opts.tmp_dir)?;
        let (tx, mut rx) = mpsc::channel::<Unpacked>(1);
        let wanted: HashSet<String> = needed.keys().cloned().collect();
        let (bundle_path, tmp_path) = (bundle.to_path_buf(), tmp.path.clone());
        let producer =
            tokio::task::spawn_blocking(move || unpack_each(&bundle_path, &wanted, &tmp_path, tx));
        while let Some(unpacked) = rx.recv().await {
            let members = needed.remove(&unpacked.archive).unwrap_or_default();
            for i in &members {
                outcomes[*i] = Some(load_one(&index.images[*i], &unpacked, opts).await);
            }
            let _ = std::fs::remove_file(&unpacked.file);
            // Only now may the reader unpack the next archive: one archive on disk at a time.
            let _ = unpacked.done.send(());
        }
        producer
            .await
            .context("bundle reader panicked")?
            .with_context(|| format!("reading bundle {}", bundle.display()))?;
        for (archive, members) in needed {
            for i in members {
                outcomes[i] = Some(ImageOutcome::Failed {
                    kind: FailKind::Other,
                    message: format!(
                        "archive {archive} for {} is named in {BUNDLE_INDEX} but not in the bundle",
                        index.images[i].reference
                    ),
                    attempts: 0,
                });
            }
        }
    }
    Ok(index
        .images
        .into_iter()
        .zip(outcomes)
        .map(|(img, o)| (img.reference, o.expect("every image got an outcome")))
        .collect())
}

/// An archive unpacked to `file`, waiting to be loaded; send on `done` when finished with it.
struct Unpacked {
    archive: String,
    file: PathBuf,
    sha256: String,
    done: oneshot::Sender<()>,
}

async fn load_one(img: &BundleImage, unpacked: &Unpacked, opts: &ImageOptions) -> ImageOutcome {
    let fail = |message: String| ImageOutcome::Failed {
        kind: FailKind::Other,
        message,
        attempts: 1,
    };
    if let Some(want) = &img.sha256 {
        if !want.eq_ignore_ascii_case(&unpacked.sha256) {
            return fail(format!(
                "archive {} for {} has sha256 {}, the index says {want}",
                unpacked.archive, img.reference, unpacked.sha256
            ));
        }
    }
    let file = unpacked.file.clone();
    let probe = tokio::task::spawn_blocking(move || probe_archive(&file)).await;
    let (transport, archive_id) = match probe {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return fail(format!("archive {}: {e:#}", unpacked.archive)),
        Err(e) => {
            return fail(format!(
                "archive {}: reader panicked: {e}",
                unpacked.archive
            ))
        }
    };
    if let Some(want) = &archive_id {
        if opts.image_id(&img.reference).await.as_deref() == Some(want.as_str()) {
            return ImageOutcome::Present { id: want.clone() };
        }
    }
    let source = format!("{transport}:{}", unpacked.file.display());
    let out = opts
        .podman()
        .args(["pull", "--quiet", &source])
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run {}: {e}", opts.podman.display())),
    };
    if !out.status.success() {
        return fail(format!(
            "podman could not load {} for {}: {}",
            unpacked.archive,
            img.reference,
            last_error_line(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let id = printed
        .lines()
        .map(str::trim)
        .rfind(|l| is_image_id(l))
        .map(str::to_string)
        .or(archive_id);
    let Some(id) = id else {
        return fail(format!(
            "podman loaded {} but printed no image id",
            unpacked.archive
        ));
    };
    let tag = opts
        .podman()
        .args(["tag", &id, &img.reference])
        .output()
        .await;
    match tag {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return fail(format!(
                "podman tag {id} {}: {}",
                img.reference,
                last_error_line(&String::from_utf8_lossy(&o.stderr))
            ))
        }
        Err(e) => return fail(format!("cannot run {}: {e}", opts.podman.display())),
    }
    tracing::info!(reference = %img.reference, %id, archive = %unpacked.archive, "image loaded from bundle");
    ImageOutcome::Loaded { id }
}

fn strip_sha256(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// A tar entry path as a plain relative string ("./a.tar" → "a.tar"); None for anything that could
/// escape the directory (absolute, `..`).
fn normalize_entry(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn read_index(bundle: &Path) -> anyhow::Result<BundleIndex> {
    let file = File::open(bundle).context("opening")?;
    let mut archive = tar::Archive::new(file);
    // Seeking skips the archives' data: finding the index costs a header read per member.
    for entry in archive.entries_with_seek().context("reading tar")? {
        let mut entry = entry.context("reading tar")?;
        if normalize_entry(&entry.path()?).as_deref() != Some(BUNDLE_INDEX) {
            continue;
        }
        let mut text = String::new();
        (&mut entry)
            .take(4 << 20)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {BUNDLE_INDEX}"))?;
        let index: BundleIndex =
            serde_json::from_str(&text).with_context(|| format!("parsing {BUNDLE_INDEX}"))?;
        validate_index(&index)?;
        return Ok(index);
    }
    bail!("no {BUNDLE_INDEX} at the top level of the bundle (see omlboot's bundle format)")
}

fn validate_index(index: &BundleIndex) -> anyhow::Result<()> {
    if index.version != 1 {
        bail!(
            "{BUNDLE_INDEX}: version {} is not supported (this omlboot reads version 1)",
            index.version
        );
    }
    let mut refs = HashSet::new();
    for (n, img) in index.images.iter().enumerate() {
        let at = format!("{BUNDLE_INDEX}: images[{n}]");
        check_reference(&img.reference).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if !refs.insert(&img.reference) {
            bail!("{at}: reference {} is listed twice", img.reference);
        }
        if normalize_entry(Path::new(&img.archive)).is_none() {
            bail!(
                "{at}: archive {:?} must be a relative path inside the bundle",
                img.archive
            );
        }
        if let Some(s) = &img.sha256 {
            if !is_image_id(s) {
                bail!("{at}: sha256 must be 64 hex digits");
            }
        }
        if let Some(id) = &img.id {
            if !is_image_id(strip_sha256(id)) {
                bail!("{at}: id must be 64 hex digits, optionally prefixed with sha256:");
            }
        }
    }
    Ok(())
}

/// Reader side of [`load_bundle`]: unpack each wanted archive to its own file, hand it over, and
/// wait until the loader is done with it before going on.
fn unpack_each(
    bundle: &Path,
    wanted: &HashSet<String>,
    dir: &Path,
    tx: mpsc::Sender<Unpacked>,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(File::open(bundle).context("opening")?);
    let mut seen = HashSet::new();
    for (n, entry) in archive.entries_with_seek()?.enumerate() {
        let mut entry = entry.context("reading tar")?;
        let Some(name) = normalize_entry(&entry.path()?) else {
            continue;
        };
        if !wanted.contains(&name) || !seen.insert(name.clone()) {
            continue;
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("{name} in the bundle is not a regular file");
        }
        // Our own file name: the member's name never reaches the filesystem.
        let file = dir.join(format!("{n}.archive"));
        let mut out =
            File::create(&file).with_context(|| format!("creating {}", file.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let got = entry
                .read(&mut buf)
                .with_context(|| format!("reading {name}"))?;
            if got == 0 {
                break;
            }
            hasher.update(&buf[..got]);
            out.write_all(&buf[..got])
                .with_context(|| format!("writing {}", file.display()))?;
        }
        out.sync_all().ok();
        drop(out);
        let (done, wait) = oneshot::channel();
        let msg = Unpacked {
            archive: name,
            file,
            sha256: hex::encode(hasher.finalize()),
            done,
        };
        if tx.blocking_send(msg).is_err() {
            return Ok(()); // loader went away (cancelled)
        }
        let _ = wait.blocking_recv();
    }
    Ok(())
}

/// Which podman transport reads this archive, and the image id inside it when it can be told
/// without loading (the id is the digest of the image config).
fn probe_archive(file: &Path) -> anyhow::Result<(&'static str, Option<String>)> {
    let small = read_members(file, |name| {
        name == "oci-layout" || name == "index.json" || name == "manifest.json"
    })?;
    if small.contains_key("oci-layout") {
        let index: serde_json::Value = serde_json::from_slice(
            small
                .get("index.json")
                .context("oci-layout without index.json")?,
        )
        .context("parsing index.json")?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        if manifests.len() != 1 {
            bail!(
                "holds {} images; a bundle archive must hold exactly one",
                manifests.len()
            );
        }
        let m = &manifests[0];
        // A multi-arch index has no single config; podman picks the platform, we just load it.
        if m["mediaType"].as_str() != Some("application/vnd.oci.image.manifest.v1+json") {
            return Ok(("oci-archive", None));
        }
        let digest = m["digest"].as_str().unwrap_or_default();
        let blob = format!("blobs/{}", digest.replacen(':', "/", 1));
        let blobs = read_members(file, |name| name == blob)?;
        let id = blobs
            .get(&blob)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v["config"]["digest"].as_str().map(str::to_string))
            .map(|d| strip_sha256(&d).to_string())
            .filter(|d| is_image_id(d));
        return Ok(("oci-archive", id));
    }
    if let Some(manifest) = small.get("manifest.json") {
        let v: serde_json::Value =
            serde_json::from_slice(manifest).context("parsing manifest.json")?;
        let images = v.as_array().cloned().unwrap_or_default();
        if images.len() != 1 {
            bail!(
                "holds {} images; a bundle archive must hold exactly one",
                images.len()
            );
        }
        // docker-archive names the config "<id>.json" or "blobs/sha256/<id>".
        let config = images[0]["Config"].as_str().unwrap_or_default();
        let stem = config.rsplit('/').next().unwrap_or_default();
        let id = stem.trim_end_matches(".json").to_string();
        return Ok(("docker-archive", is_image_id(&id).then_some(id)));
    }
    bail!("is neither an OCI archive (no oci-layout) nor a docker archive (no manifest.json)")
}

/// Read the (small) members whose names pass `want`, skipping the rest by seeking.
fn read_members(
    file: &Path,
    want: impl Fn(&str) -> bool,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut archive = tar::Archive::new(File::open(file)?);
    let mut found = BTreeMap::new();
    for entry in archive.entries_with_seek()? {
        let mut entry = entry?;
        let Some(name) = normalize_entry(&entry.path()?) else {
            continue;
        };
        if want(&name) {
            let mut data = Vec::new();
            (&mut entry).take(16 << 20).read_to_end(&mut data)?;
            found.insert(name, data);
        }
    }
    Ok(found)
}

/// A private directory removed with everything in it when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create(parent: &Path) -> anyhow::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = parent.join(format!("omlboot-bundle.{}.{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_podman_errors() {
        let cases = [
            ("Error: initializing source docker://r/a:1: reading manifest 1 in r/a: unauthorized: authentication required", FailKind::Auth),
            ("Error: reading manifest 9 in r/a: manifest unknown: manifest unknown", FailKind::NotFound),
            ("Error: pinging container registry r: invalid status code from registry 503 (Service Unavailable)", FailKind::Transient),
            ("Error: fetching blob: received unexpected HTTP status: 502 Bad Gateway", FailKind::Transient),
            ("time=x level=warning msg=\"Failed, retrying in 1s ... (1/3). Error: connection refused\"\nError: reading manifest 1 in r/a: manifest unknown", FailKind::NotFound),
            ("Error: Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused", FailKind::Transient),
            ("Error: stat /nonexist.json: no such file or directory", FailKind::Other),
            ("Error: open /run/x/auth.json: permission denied", FailKind::Other),
            ("Error: requested access to the resource is denied", FailKind::Auth),
            ("Error: pinging: Get \"https://r/v2/\": http: server gave HTTP response to HTTPS client", FailKind::Other),
            ("Error: something odd on port 5000 with digest 500abc", FailKind::Other),
            ("Error: received unexpected HTTP status: 429 Too Many Requests", FailKind::Transient),
            ("Error: net/http: TLS handshake timeout", FailKind::Transient),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), want, "{stderr}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(2);
        assert_eq!(backoff_delay(b, 1), Duration::from_secs(2));
        assert_eq!(backoff_delay(b, 2), Duration::from_secs(4));
        assert_eq!(backoff_delay(b, 4), Duration::from_secs(16));
        assert_eq!(backoff_delay(b, 5), MAX_BACKOFF);
        assert_eq!(backoff_delay(b, 200), MAX_BACKOFF);
    }

    #[test]
    fn urls_lose_their_query() {
        assert_eq!(
            redact_urls("GET \"https://s3/x?X-Amz-Signature=abc&t=1\": 403 Forbidden"),
            "GET \"https://s3/x?<redacted>\": 403 Forbidden"
        );
        assert_eq!(redact_urls("no url here?"), "no url here?");
    }

    #[test]
    fn entry_paths_cannot_escape() {
        assert_eq!(
            normalize_entry(Path::new("./a.tar")).as_deref(),
            Some("a.tar")
        );
        assert_eq!(
            normalize_entry(Path::new("d/a.tar")).as_deref(),
            Some("d/a.tar")
        );
        assert_eq!(normalize_entry(Path::new("../a.tar")), None);
        assert_eq!(normalize_entry(Path::new("/a.tar")), None);
    }

    #[test]
    fn index_validation() {
        let ok: BundleIndex = serde_json::from_str(
            r#"{"version":1,"images":[{"reference":"r/a:1","archive":"a.tar"}]}"#,
        )
        .unwrap();
        validate_index(&ok).unwrap();
        let mut bad = ok.clone();
        bad.version = 2;
        assert!(validate_index(&bad).is_err());
        let mut bad = ok.clone();
        bad.images[0].archive = "../a.tar".into();
        assert!(validate_index(&bad).is_err());
        let mut bad = ok.clone();
        bad.images.push(bad.images[0].clone());
        assert!(validate_index(&bad).is_err());
        assert!(serde_json::from_str::<BundleIndex>(
            r#"{"version":1,"images":[{"reference":"r/a:1","archive":"a.tar","sha265":"x"}]}"#
        )
        .is_err());
    }
}
