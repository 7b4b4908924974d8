//! Pulls from registries: bounded parallelism, retries only for errors that may pass.
use super::store::{check_reference, is_image_id};
use super::{FailKind, ImageOptions, ImageOutcome};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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
    let outcome = opts
        .retry()
        .run(
            |attempt| async move {
                let started = std::time::Instant::now();
                let id = pull_once(reference, opts, retry_flag).await?;
                tracing::info!(reference, %id, attempts = attempt, elapsed_ms = started.elapsed().as_millis() as u64, "image pulled");
                Ok(id)
            },
            |(kind, message), next| {
                let transient = *kind == FailKind::Transient;
                if transient {
                    tracing::warn!(reference, attempt = next.failed, retry_in_ms = next.wait.as_millis() as u64, error = %message, "transient pull failure, retrying");
                }
                transient
            },
        )
        .await;
    let attempts = outcome.attempts;
    match outcome.result {
        Ok(id) => ImageOutcome::Pulled { id, attempts },
        Err((kind, message)) => {
            tracing::error!(reference, attempts, ?kind, error = %message, "image pull failed");
            ImageOutcome::Failed {
                kind,
                message,
                attempts,
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
    // "404" as a number of its own: a port or an address (127.0.0.1:40454) may hold those digits.
    let status_404 = line
        .split(|c: char| !c.is_ascii_digit())
        .any(|number| number == "404");
    if status_404
        || has(&[
            "manifest unknown",
            "name unknown",
            "not found",
            "repository does not exist",
            "no image found in manifest list",
        ])
    {
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
pub(crate) fn last_error_line(stderr: &str) -> String {
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
            // A port that holds the digits 404 is not a 404 (a reset mid-blob seen in tests/images_registry.rs).
            ("Error: parsing image configuration: read tcp 127.0.0.1:40454->127.0.0.1:46333: read: connection reset by peer", FailKind::Transient),
            ("Error: reading manifest 1 in r/a: StatusCode: 404, \"404 page not found\"", FailKind::NotFound),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), want, "{stderr}");
        }
    }

    #[test]
    fn urls_lose_their_query() {
        assert_eq!(
            redact_urls("GET \"https://s3/x?X-Amz-Signature=abc&t=1\": 403 Forbidden"),
            "GET \"https://s3/x?<redacted>\": 403 Forbidden"
        );
        assert_eq!(redact_urls("no url here?"), "no url here?");
    }
}
