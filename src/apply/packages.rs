//! OS packages: install what the role needs and is missing, in one transaction, without prompting.
//!
//! Query first (`dpkg-query` / `rpm -q`) so a converged host runs no package manager at all, then
//! one `apt-get install` / `dnf install` for the missing names. The package manager's messages
//! are read in the C locale to tell apart: packages that do not exist (after one `apt-get update`),
//! a lock held by someone else (on first boot, usually cloud-init's or unattended-upgrades' apt),
//! transient network trouble (retried with backoff), and the rest (reported with the tool's last
//! output lines).
//!
//! Locks: apt ≥ 1.9.11 waits for the dpkg locks itself with `-o DPkg::Lock::Timeout=SECS`; we pass
//! the time left until `lock_deadline`. `apt-get update` does not wait for the lists lock (it fails
//! at once), so before an update we wait for `/var/lib/apt/lists/lock` and
//! `/var/lib/dpkg/lock-frontend` ourselves, by asking the kernel who holds the fcntl lock. dnf
//! waits for its own lock with no deadline, so before dnf we wait for the rpm database lock the
//! same way.

use crate::retry::Retry;
use anyhow::Context as _;
use serde::Serialize;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// Which package manager the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Apt,
    Dnf,
}

#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// How long, in all, to wait for another package manager to let go of its lock.
    pub lock_deadline: Duration,
    /// Retries after the first attempt, for transient (network) failures only.
    pub retries: u32,
    /// First wait between attempts, doubling, capped at 30 s.
    pub backoff: Duration,
    /// Query only: report what would be installed in `would_install`, change nothing.
    pub dry_run: bool,
}

impl PackageOptions {
    /// For transient failures only. A lock is waited out until `lock_deadline` instead, and every
    /// run of the tool counts as an attempt, so lock waits and list refreshes use up retries too.
    pub fn retry(&self) -> Retry {
        Retry::new(self.retries, self.backoff).max_delay(Duration::from_secs(30))
    }
}

impl Default for PackageOptions {
    fn default() -> Self {
        PackageOptions {
            lock_deadline: Duration::from_secs(300),
            retries: 3,
            backoff: Duration::from_secs(5),
            dry_run: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackagesOutcome {
    /// Installed before we started; nothing was done for these.
    pub already: Vec<String>,
    /// Installed by this call.
    pub installed: Vec<String>,
    /// Dry run only: what a real run would install.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_install: Vec<String>,
}

/// Why packages could not be installed. Returned inside `anyhow::Error`; downcast to match on it.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("invalid package name {0:?}")]
    InvalidName(String),
    #[error("no such package in the configured repositories: {} (after refreshing the package lists){}", .names.join(", "), indent(.tail))]
    NotFound { names: Vec<String>, tail: String },
    #[error("gave up after {waited:?} waiting for the package manager lock {path}{}{}", .holder.as_ref().map(|h| format!(", held by {h}")).unwrap_or_default(), indent(.tail))]
    Lock {
        path: String,
        holder: Option<String>,
        waited: Duration,
        tail: String,
    },
    #[error("{tool} failed ({status}, after {attempts} attempt(s)) installing {}{}", .names.join(", "), indent(.tail))]
    Failed {
        tool: &'static str,
        names: Vec<String>,
        status: String,
        attempts: u32,
        tail: String,
    },
}

fn indent(tail: &str) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut s = String::from("; last output:");
    for l in tail.lines() {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

/// Make `names` installed. Duplicates are dropped; order is kept.
pub async fn ensure(
    family: Family,
    names: &[String],
    opts: &PackageOptions,
) -> anyhow::Result<PackagesOutcome> {
    let deadline = Instant::now() + opts.lock_deadline;
    let mut unique: Vec<String> = Vec::new();
    for n in names {
        check_name(n)?;
        if !unique.contains(n) {
            unique.push(n.clone());
        }
    }
    let mut outcome = PackagesOutcome::default();
    let mut missing = Vec::new();
    let present = installed(family, &unique).await?;
    for n in unique {
        if present.contains(&n) {
            outcome.already.push(n);
        } else {
            missing.push(n);
        }
    }
    if missing.is_empty() {
        return Ok(outcome);
    }
    if opts.dry_run {
        outcome.would_install = missing;
        return Ok(outcome);
    }
    let started = Instant::now();
    match family {
        Family::Apt => apt_install(&missing, opts, deadline).await?,
        Family::Dnf => dnf_install(&missing, opts, deadline).await?,
    }
    // A virtual or provides-only name can be satisfied by a package with another name; the tool
    // said yes, so this is a note, not an error.
    for n in &missing {
        if !is_installed(family, n).await.unwrap_or(false) {
            tracing::warn!(package = %n, "installed, but not found under that name afterwards (virtual package?)");
        }
    }
    tracing::info!(packages = ?missing, elapsed_ms = started.elapsed().as_millis() as u64, "packages installed");
    outcome.installed = missing;
    Ok(outcome)
}

/// Package names go on a command line: refuse anything that could be taken for an option or a
/// pattern, so a config value never turns into `-o ...` or a glob install.
fn check_name(name: &str) -> Result<(), PackageError> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_' | ':' | '=' | '~' | '/')
        });
    if ok {
        Ok(())
    } else {
        Err(PackageError::InvalidName(name.to_string()))
    }
}

/// Which of `names` are installed, in one `dpkg-query` for apt (one per name cost a converged host
/// a second under emulation); dnf asks rpm per name, all at once.
pub async fn installed(
    family: Family,
    names: &[String],
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeSet::new();
    match family {
        Family::Apt => {
            if names.is_empty() {
                return Ok(out);
            }
            let bare = |n: &str| n.split(['=', '/']).next().unwrap_or(n).to_string();
            for n in names {
                check_name(n)?;
            }
            let run = quiet_command("dpkg-query")
                .args(["-W", "-f", "${Package}\t${Status}\n", "--"])
                .args(names.iter().map(|n| bare(n)))
                .output()
                .await
                .context("running dpkg-query")?;
            // Exit 1: some name is unknown to dpkg (it says so on stderr); the others are listed.
            if !matches!(run.status.code(), Some(0 | 1)) {
                anyhow::bail!(
                    "dpkg-query -W failed: {}",
                    String::from_utf8_lossy(&run.stderr).trim()
                );
            }
            let stdout = String::from_utf8_lossy(&run.stdout);
            // One line per installed architecture; any fully installed one counts.
            let ok: std::collections::BTreeSet<&str> = stdout
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .filter(|(_, status)| status.split_whitespace().last() == Some("installed"))
                .map(|(package, _)| package.split(':').next().unwrap_or(package))
                .collect();
            out.extend(
                names
                    .iter()
                    .filter(|n| ok.contains(bare(n).as_str()))
                    .cloned(),
            );
        }
        Family::Dnf => {
            let mut asking = tokio::task::JoinSet::new();
            for n in names.iter().cloned() {
                asking.spawn(async move { (is_installed(family, &n).await, n) });
            }
            while let Some(joined) = asking.join_next().await {
                let (answer, n) = joined.context("an rpm query panicked")?;
                if answer? {
                    out.insert(n);
                }
            }
        }
    }
    Ok(out)
}

/// Is `name` installed? apt: dpkg's status says "installed" (not config-files, half-installed…);
/// dnf: rpm knows a package that is or provides it.
pub async fn is_installed(family: Family, name: &str) -> anyhow::Result<bool> {
    check_name(name)?;
    match family {
        Family::Apt => {
            // "pkg=version" and "pkg/release" select what apt installs; dpkg knows the bare name.
            let name = name.split(['=', '/']).next().unwrap_or(name);
            let out = quiet_command("dpkg-query")
                .args(["-W", "-f", "${Status}\\n", "--", name])
                .output()
                .await
                .context("running dpkg-query")?;
            match out.status.code() {
                // One line per installed architecture; any fully installed one counts.
                Some(0) => Ok(String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|l| l.split_whitespace().last() == Some("installed"))),
                Some(1) => Ok(false),
                _ => anyhow::bail!(
                    "dpkg-query -W {name} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }
        }
        Family::Dnf => {
            let out = quiet_command("rpm")
                .args(["-q", "--whatprovides", name])
                .output()
                .await
                .context("running rpm -q")?;
            Ok(out.status.success())
        }
    }
}

/// A command that never prompts and answers in the C locale (we read its messages).
fn quiet_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .kill_on_drop(true);
    cmd
}

fn apt_command() -> Command {
    let mut cmd = quiet_command("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        // Ubuntu's needrestart asks which services to restart unless told not to.
        .env("NEEDRESTART_MODE", "a")
        .env("NEEDRESTART_SUSPEND", "1");
    cmd
}

/// What a failed package-manager run means for us.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// These names are unknown to the package lists.
    NotFound(Vec<String>),
    /// Someone else holds `path`; `holder` is "process N (name)" when the tool said.
    Lock {
        path: String,
        holder: Option<String>,
    },
    /// The lists point at files the mirror no longer has: refresh them.
    StaleLists,
    /// A previous dpkg run was cut off (e.g. a reboot during cloud-init's apt).
    Interrupted,
    Transient,
    Other,
}

fn classify_apt(text: &str) -> Failure {
    let mut missing = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        for (prefix, close) in [
            ("E: Unable to locate package ", None),
            ("E: Package '", Some('\'')),
            ("E: Couldn't find any package by glob '", Some('\'')),
            ("E: Couldn't find any package by regex '", Some('\'')),
        ] {
            if let Some(rest) = l.strip_prefix(prefix) {
                let name = match close {
                    Some(c) => rest.split(c).next().unwrap_or(rest),
                    None => rest,
                };
                // "Package 'x' has no installation candidate" only; other "E: Package" lines
                // (e.g. "has unmet dependencies") are not about a missing name.
                if prefix != "E: Package '" || l.contains("has no installation candidate") {
                    missing.push(name.trim().to_string());
                }
            }
        }
        if let (Some(_), Some(pos)) = (l.strip_prefix("E: Version '"), l.find("' for '")) {
            let rest = &l[pos + "' for '".len()..];
            missing.push(rest.split('\'').next().unwrap_or(rest).to_string());
        }
    }
    if !missing.is_empty() {
        missing.dedup();
        return Failure::NotFound(missing);
    }
    if let Some(lock) = lock_failure(text) {
        return lock;
    }
    if text.contains("dpkg was interrupted") {
        return Failure::Interrupted;
    }
    if text.contains("404  Not Found")
        || text.contains("404 Not Found")
        || text.contains("maybe run apt-get update")
    {
        return Failure::StaleLists;
    }
    let transient = [
        "Temporary failure resolving",
        "Could not resolve",
        "Could not connect to",
        "Connection failed",
        "Connection timed out",
        "Connection refused",
        "Unable to connect",
        "Network is unreachable",
        "No route to host",
        "Hash Sum mismatch",
        "Undetermined Error",
        "Failed to fetch",
        "503  Service Unavailable",
        "502  Bad Gateway",
        "Could not wait for server fd",
        "Cannot initiate the connection",
        "Connection reset",
    ];
    if transient.iter().any(|t| text.contains(t)) {
        return Failure::Transient;
    }
    Failure::Other
}

fn lock_failure(text: &str) -> Option<Failure> {
    let is_lock = [
        "Could not get lock",
        "Unable to acquire the dpkg frontend lock",
        "Unable to lock directory",
        "Unable to lock the administration directory",
    ]
    .iter()
    .any(|m| text.contains(m));
    if !is_lock {
        return None;
    }
    // "Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 3135 (python3)..."
    let mut path = "/var/lib/dpkg/lock-frontend".to_string();
    let mut holder = None;
    for line in text.lines().rev() {
        if let Some(pos) = line.find("Could not get lock ") {
            let rest = &line[pos + "Could not get lock ".len()..];
            let p = rest.split([' ', '\n']).next().unwrap_or(rest);
            path = p.trim_end_matches('.').to_string();
            if let Some(h) = rest.find("held by ") {
                let h = &rest[h + "held by ".len()..];
                let end = h.find(')').map(|e| e + 1).unwrap_or(h.len());
                holder = Some(h[..end].to_string());
            }
            break;
        }
    }
    Some(Failure::Lock { path, holder })
}

fn classify_dnf(text: &str) -> Failure {
    let mut missing = Vec::new();
    for line in text.lines() {
        for prefix in ["No match for argument: ", "Unable to find a match: "] {
            if let Some(pos) = line.find(prefix) {
                missing.extend(
                    line[pos + prefix.len()..]
                        .split_whitespace()
                        .map(str::to_string),
                );
            }
        }
    }
    if !missing.is_empty() {
        missing.dedup();
        return Failure::NotFound(missing);
    }
    if text.contains("Could not get lock") || text.contains("another copy is running") {
        return Failure::Lock {
            path: "/var/lib/rpm/.rpm.lock".into(),
            holder: None,
        };
    }
    let transient = [
        "Curl error",
        "Cannot download",
        "Failed to download",
        "Timeout was reached",
        "Could not resolve host",
        "Cannot prepare internal mirrorlist",
        "Librepo error",
        "All mirrors were tried",
        "Connection refused",
        "Status code: 5",
        "Operation too slow",
    ];
    if transient.iter().any(|t| text.contains(t)) {
        return Failure::Transient;
    }
    Failure::Other
}

/// Run a prepared command, returning (success, exit description, combined output).
async fn run(mut cmd: Command, tool: &'static str) -> anyhow::Result<(bool, String, String)> {
    let ran = crate::exec::capture(&mut cmd, None)
        .await
        .with_context(|| format!("cannot run {tool}"))?;
    // stderr last: that is where the E: lines are, and the tail is what we show.
    let text = format!("{}\n{}", ran.stdout, ran.stderr);
    let status = match ran.code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".to_string(),
    };
    Ok((ran.success, status, text))
}

fn tail(text: &str, n: usize) -> String {
    crate::exec::tail(text, n)
}

fn lists_are_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(entries) => !entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages")),
        Err(_) => true,
    }
}

/// One failed run of a package tool, for [`after_failure`].
struct FailedRun<'a> {
    tool: &'static str,
    names: &'a [String],
    status: String,
    attempt: u32,
    text: &'a str,
}

/// What every back end does after a failed run once its tool-specific cases are handled: wait out a
/// held lock until `deadline` (polling every `lock_pause`), retry a transient failure with backoff, and
/// otherwise fail with the tool's output. Ok(()) means "run it again".
async fn after_failure(
    failure: Failure,
    run: FailedRun<'_>,
    opts: &PackageOptions,
    deadline: Instant,
    lock_pause: Duration,
) -> anyhow::Result<()> {
    match (failure, opts.retry().delay_after(run.attempt)) {
        (Failure::Lock { .. }, _) if Instant::now() < deadline => {
            tokio::time::sleep(lock_pause).await;
            Ok(())
        }
        (Failure::Lock { path, holder }, _) => Err(PackageError::Lock {
            path,
            holder,
            waited: opts.lock_deadline,
            tail: tail(run.text, 6),
        }
        .into()),
        (Failure::Transient, Some(pause)) => {
            tracing::warn!(
                attempt = run.attempt,
                retry_in_ms = pause.as_millis() as u64,
                "{}: transient failure, retrying",
                run.tool
            );
            tokio::time::sleep(pause).await;
            Ok(())
        }
        _ => Err(PackageError::Failed {
            tool: run.tool,
            names: run.names.to_vec(),
            status: run.status,
            attempts: run.attempt,
            tail: tail(run.text, 12),
        }
        .into()),
    }
}

async fn apt_install(
    names: &[String],
    opts: &PackageOptions,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut updated = false;
    if lists_are_empty(Path::new("/var/lib/apt/lists")) {
        apt_update(opts, deadline).await?;
        updated = true;
    }
    let mut configured = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let wait = deadline.saturating_duration_since(Instant::now());
        let mut cmd = apt_command();
        cmd.args([
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "-o",
            &format!("DPkg::Lock::Timeout={}", wait.as_secs()),
            "install",
            "--no-install-recommends",
            "--",
        ])
        .args(names);
        tracing::info!(packages = ?names, attempt, "apt-get install");
        let (ok, status, text) = run(cmd, "apt-get").await?;
        if ok {
            return Ok(());
        }
        match classify_apt(&text) {
            Failure::NotFound(_) | Failure::StaleLists if !updated => {
                tracing::info!("package lists are stale or incomplete: apt-get update");
                apt_update(opts, deadline).await?;
                updated = true;
            }
            Failure::NotFound(missing) => {
                return Err(PackageError::NotFound {
                    names: missing,
                    tail: tail(&text, 12),
                }
                .into())
            }
            Failure::Interrupted if !configured => {
                tracing::warn!("a previous dpkg run was interrupted: dpkg --configure -a");
                configured = true;
                let mut cmd = quiet_command("dpkg");
                cmd.env("DEBIAN_FRONTEND", "noninteractive").args([
                    "--configure",
                    "-a",
                    "--force-confdef",
                    "--force-confold",
                ]);
                run(cmd, "dpkg").await?;
            }
            // apt waits whole seconds; poll a little and let it wait out the remainder.
            failure => {
                let run = FailedRun {
                    tool: "apt-get install",
                    names,
                    status,
                    attempt,
                    text: &text,
                };
                after_failure(failure, run, opts, deadline, Duration::from_millis(250)).await?
            }
        }
    }
}

async fn apt_update(opts: &PackageOptions, deadline: Instant) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // apt-get update fails at once on a held lists lock rather than waiting: wait here.
        wait_for_locks(
            &["/var/lib/apt/lists/lock", "/var/lib/dpkg/lock-frontend"],
            deadline,
            opts.lock_deadline,
        )
        .await?;
        let mut cmd = apt_command();
        cmd.args(["-q", "update"]);
        let (ok, status, text) = run(cmd, "apt-get").await?;
        // update exits 0 even when a source failed (it prints W: lines); the install that
        // follows tells whether what we need is there.
        if ok {
            return Ok(());
        }
        let run = FailedRun {
            tool: "apt-get update",
            names: &[],
            status,
            attempt,
            text: &text,
        };
        after_failure(
            classify_apt(&text),
            run,
            opts,
            deadline,
            Duration::from_millis(250),
        )
        .await?;
    }
}

async fn dnf_install(
    names: &[String],
    opts: &PackageOptions,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // dnf would wait on a held rpm lock with no end; wait here, with the deadline.
        wait_for_locks(&["/var/lib/rpm/.rpm.lock"], deadline, opts.lock_deadline).await?;
        let mut cmd = quiet_command("dnf");
        cmd.args([
            "-y",
            "--setopt=install_weak_deps=False",
            "--setopt=strict=True",
            "install",
        ])
        .args(names);
        tracing::info!(packages = ?names, attempt, "dnf install");
        let (ok, status, text) = run(cmd, "dnf").await?;
        if ok {
            return Ok(());
        }
        match classify_dnf(&text) {
            // dnf refreshes expired metadata by itself, so an unknown name is final.
            Failure::NotFound(missing) => {
                return Err(PackageError::NotFound {
                    names: missing,
                    tail: tail(&text, 12),
                }
                .into())
            }
            failure => {
                let run = FailedRun {
                    tool: "dnf install",
                    names,
                    status,
                    attempt,
                    text: &text,
                };
                after_failure(failure, run, opts, deadline, Duration::from_millis(500)).await?
            }
        }
    }
}

/// Wait until nobody holds an fcntl write lock on any of `paths` (missing files count as free),
/// or fail with [`PackageError::Lock`] at `deadline`. This only looks (F_GETLK); it takes no
/// lock, so there is a small window in which another tool can grab it first: the tool we run
/// next then reports a lock error, which the callers retry until the deadline.
pub async fn wait_for_locks(
    paths: &[&str],
    deadline: Instant,
    total: Duration,
) -> Result<(), PackageError> {
    let mut logged = false;
    loop {
        let held = paths
            .iter()
            .find_map(|p| lock_holder(Path::new(p)).map(|h| (p, h)));
        let Some((path, holder)) = held else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(PackageError::Lock {
                path: path.to_string(),
                holder: Some(holder),
                waited: total,
                tail: String::new(),
            });
        }
        if !logged {
            tracing::info!(lock = %path, %holder, "waiting for the package manager lock");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Who holds a conflicting fcntl lock on `path`: "process N (comm)", or None when it is free.
pub fn lock_holder(path: &Path) -> Option<String> {
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;
    let file = std::fs::File::open(path).ok()?;
    // SAFETY-free: flock is plain data; zeroed is a valid value for every field.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fcntl(file.as_raw_fd(), FcntlArg::F_GETLK(&mut fl)).ok()?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", fl.l_pid)).unwrap_or_default();
    Some(format!("process {} ({})", fl.l_pid, comm.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_messages() {
        assert_eq!(
            classify_apt("Reading package lists...\nE: Unable to locate package nope-x\nE: Unable to locate package nope-y"),
            Failure::NotFound(vec!["nope-x".into(), "nope-y".into()])
        );
        assert_eq!(
            classify_apt("E: Package 'foo' has no installation candidate"),
            Failure::NotFound(vec!["foo".into()])
        );
        assert_eq!(
            classify_apt("E: Version '9.9' for 'hello' was not found"),
            Failure::NotFound(vec!["hello".into()])
        );
        assert_eq!(
            classify_apt("Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 3135 (python3)... 1s\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"),
            Failure::Lock { path: "/var/lib/dpkg/lock-frontend".into(), holder: Some("process 3135 (python3)".into()) }
        );
        assert_eq!(
            classify_apt("E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4214 (python3)\nE: Unable to lock directory /var/lib/apt/lists/"),
            Failure::Lock { path: "/var/lib/apt/lists/lock".into(), holder: Some("process 4214 (python3)".into()) }
        );
        assert_eq!(
            classify_apt("E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem."),
            Failure::Interrupted
        );
        assert_eq!(
            classify_apt("E: Failed to fetch http://x/pool/h.deb  404  Not Found [IP: 1.2.3.4 80]\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?"),
            Failure::StaleLists
        );
        assert_eq!(
            classify_apt("Err:1 http://x bookworm/main amd64 hello amd64 2.10-3\n  Temporary failure resolving 'x'\nE: Failed to fetch http://x/h.deb  Temporary failure resolving 'x'"),
            Failure::Transient
        );
        assert_eq!(
            classify_apt("E: Unmet dependencies. Try 'apt --fix-broken install'"),
            Failure::Other
        );
    }

    #[test]
    fn dnf_messages() {
        assert_eq!(
            classify_dnf("No match for argument: nope\nError: Unable to find a match: nope"),
            Failure::NotFound(vec!["nope".into()])
        );
        assert_eq!(
            classify_dnf("Error: Failed to download metadata for repo 'baseos': Cannot download repomd.xml: Curl error (6)"),
            Failure::Transient
        );
        assert_eq!(
            classify_dnf("Error: Transaction test error"),
            Failure::Other
        );
    }

    #[test]
    fn names_are_checked() {
        for good in ["podman", "libc6:amd64", "g++", "python3.11", "hello=2.10-3"] {
            check_name(good).unwrap();
        }
        for bad in ["", "-o", "--force", "a b", "x*", "a;b", "$(x)"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_text_names_packages() {
        let e = PackageError::NotFound {
            names: vec!["nope".into()],
            tail: "E: Unable to locate package nope".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("nope") && s.contains("last output:\n  E: Unable"),
            "{s}"
        );
    }
}
