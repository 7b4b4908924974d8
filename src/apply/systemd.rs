//! systemd driver over D-Bus (zbus, tokio): daemon-reload, enable, start/restart with a deadline,
//! uncached state reads and reset-failed.
//!
//! Why D-Bus and not `systemctl`: we need the *job result* of each start (done, failed, timeout,
//! dependency, canceled, skipped) and the unit's `Result`/`ExecMainStatus`, without parsing human
//! output, and with our own deadline instead of systemctl's.
//!
//! How a start is awaited (see [`Systemd::start`]):
//! 1. The `JobRemoved` match is added (and acknowledged by the bus) *before* `StartUnit` is sent.
//!    Without any `Subscribe()`, systemd still sends job signals to the client that queued the
//!    job (it tracks the requester on the job), so no bus-wide subscription is needed; `Subscribe()`
//!    would make systemd broadcast every unit and job change to every listener, which is pure noise
//!    for us and costs the whole bus.
//! 2. While the `StartUnit` call is in flight, the signal stream is drained into a buffer: a
//!    `JobRemoved` for our job can arrive before the method reply (when the job finishes at once),
//!    and we only learn our job's path from that reply. Draining also matters because zbus applies
//!    back-pressure: an unpolled full signal queue stalls the whole connection, method replies
//!    included.
//! 3. After the reply, the buffer is searched for our job path, then the stream is awaited.
//! 4. A jittered poll of `ListJobs` runs alongside: if our job is gone from the queue but its signal
//!    never came (queue overflow, systemd re-exec, a bus hiccup), the result is inferred from the
//!    unit's state instead of waiting for the deadline.
//! 5. Everything is bounded by the caller's deadline; past it we report `job_result: "timeout"`
//!    with the unit's current state. The job is left queued, as `systemctl start` does when
//!    interrupted: systemd's own TimeoutStartSec still bounds it, and a later run sees the outcome.
//! 6. A `done` job is not trusted alone: the unit's `ActiveState` is re-read after a short settle,
//!    because a `Type=simple` start is "done" as soon as the process is forked, and a
//!    `Restart=on-failure` unit may already be crashing again.
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rand::Rng;
use serde::Serialize;
use tokio::time::{sleep, timeout, timeout_at, Instant};
use zbus::export::futures_core::Stream;
use zbus::names::InterfaceName;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

const DEST: &str = "org.freedesktop.systemd1";
const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";

/// Bound on any single D-Bus method call, so a wedged systemd or bus cannot hang us forever.
/// Generous because `Reload` on a host with many units can take several seconds.
const METHOD_TIMEOUT: Duration = Duration::from_secs(120);

/// Bound on the state and journal reads on the reporting path (also after a deadline has expired).
/// Not a few seconds: a 1-vCPU host starting a dozen containers at once was seen to take over 5 s
/// to answer GetAll, and a unit that started fine must not be reported failed for that.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// Journal lines attached to a failure.
const JOURNAL_LINES: usize = 20;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn reload(&self) -> zbus::Result<()>;

    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<(String, String, String)>)>;

    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    /// (id, unit, type, state, job path, unit path)
    #[allow(clippy::type_complexity)]
    fn list_jobs(
        &self,
    ) -> zbus::Result<
        Vec<(
            u32,
            String,
            String,
            String,
            OwnedObjectPath,
            OwnedObjectPath,
        )>,
    >;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// A unit's state as systemd reports it right now (never from a property cache).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitState {
    pub unit: String,
    /// loaded, not-found, bad-setting, error, masked
    pub load_state: String,
    /// active, reloading, inactive, failed, activating, deactivating
    pub active_state: String,
    /// running, dead, exited, auto-restart, start, ... (type specific)
    pub sub_state: String,
    /// Service.Result: success, exit-code, signal, timeout, core-dump, watchdog, start-limit-hit, ...
    /// Empty for units that are not services.
    pub result: String,
    /// Service.NRestarts: automatic restarts (Restart=) since the unit was last started by a job.
    pub n_restarts: u32,
    /// Service.ExecMainStatus: exit code (or signal number) of the main process.
    pub exec_main_status: i32,
    /// Unit.ActiveEnterTimestamp in µs since the epoch; 0 if it never was active.
    pub active_enter_timestamp: u64,
    /// enabled, disabled, static, masked, linked, ... (empty if systemd has no unit file for it)
    pub unit_file_state: String,
    /// Service.Type: simple, exec, forking, oneshot, notify, ... (empty for non-services)
    pub service_type: String,
}

impl UnitState {
    /// Whether the unit counts as successfully started: active (or reloading), or a oneshot
    /// service that ran to completion (it goes back to inactive with Result=success).
    pub fn is_up(&self) -> bool {
        match self.active_state.as_str() {
            "active" | "reloading" => true,
            "inactive" => self.service_type == "oneshot" && self.result == "success",
            _ => false,
        }
    }
}

/// How a start or restart ended.
#[derive(Debug, Clone, Serialize)]
pub enum Outcome {
    /// The job finished `done` and the unit is up (see [`UnitState::is_up`]).
    Active(UnitState),
    /// The job did not finish `done`, our deadline passed (`job_result: "timeout"`), or the job
    /// was `done` but the unit did not stay up (`job_result: "done"`, e.g. a crash right after
    /// the fork of a `Type=simple` service).
    Failed {
        /// done, canceled, timeout, failed, dependency, skipped (or any newer systemd result)
        job_result: String,
        state: UnitState,
        /// Last lines of the unit's journal, oldest first.
        journal: Vec<String>,
    },
}

impl Outcome {
    pub fn is_active(&self) -> bool {
        matches!(self, Outcome::Active(_))
    }

    pub fn state(&self) -> &UnitState {
        match self {
            Outcome::Active(s) => s,
            Outcome::Failed { state, .. } => state,
        }
    }
}

/// Where failure reports read the journal from.
#[derive(Debug, Clone, Default)]
pub enum JournalSource {
    /// The host's journal: plain `journalctl`.
    #[default]
    Local,
    /// `journalctl --directory DIR`, e.g. a container's journal seen from the host.
    Directory(PathBuf),
    /// Run journalctl behind this command prefix, e.g.
    /// `["nsenter", "-t", "<pid>", "-a", "--"]` to read a container's journal from inside it.
    Command(Vec<String>),
}

impl JournalSource {
    fn command(&self, unit: &str, lines: usize) -> (String, Vec<String>) {
        let mut argv: Vec<String> = match self {
            JournalSource::Command(prefix) => prefix.clone(),
            _ => Vec::new(),
        };
        argv.push("journalctl".into());
        if let JournalSource::Directory(dir) = self {
            argv.push("--directory".into());
            argv.push(dir.display().to_string());
        }
        argv.extend(
            [
                "-u",
                unit,
                "-n",
                &lines.to_string(),
                "-o",
                "cat",
                "--no-pager",
                "-q",
            ]
            .map(String::from),
        );
        let program = argv.remove(0);
        (program, argv)
    }

    /// Last `lines` lines of `unit`'s journal (blocking). Empty if journalctl fails: the journal
    /// is only decoration on a failure report and must never turn into an error of its own.
    pub fn tail(&self, unit: &str, lines: usize) -> Vec<String> {
        let (program, args) = self.command(unit, lines);
        match std::process::Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        {
            Ok(out) => split_lines(&out.stdout),
            Err(e) => {
                tracing::warn!(unit, error = %e, "cannot run {program} for the journal");
                Vec::new()
            }
        }
    }

    /// Async, time-bounded variant of [`JournalSource::tail`] for use on the apply path.
    async fn tail_async(&self, unit: &str, lines: usize) -> Vec<String> {
        let (program, args) = self.command(unit, lines);
        let child = tokio::process::Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output();
        match timeout(REPORT_TIMEOUT, child).await {
            Ok(Ok(out)) => split_lines(&out.stdout),
            Ok(Err(e)) => {
                tracing::warn!(unit, error = %e, "cannot run {program} for the journal");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(unit, "journalctl did not answer in {REPORT_TIMEOUT:?}");
                Vec::new()
            }
        }
    }
}

fn split_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Knobs for waiting on jobs. The defaults are what `omlboot apply` uses; tests change them to
/// exercise the fallback paths.
#[derive(Debug, Clone)]
pub struct WaitTuning {
    /// After a `done` job, wait this long and re-read the unit before calling it up. Skipped when
    /// `start` finds the unit already active (nothing was started, nothing can have crashed).
    pub settle: Duration,
    /// Mean period of the `ListJobs` poll that catches a missed `JobRemoved` (±20% jitter, so
    /// many waiters do not poll in lockstep).
    pub poll_interval: Duration,
    /// Test knob: `false` drains and ignores every `JobRemoved` signal, so only the poll can end
    /// the wait. Proves a missed signal cannot hang a start until its deadline.
    pub use_signals: bool,
}

impl Default for WaitTuning {
    fn default() -> Self {
        WaitTuning {
            settle: Duration::from_millis(500),
            poll_interval: Duration::from_secs(1),
            use_signals: true,
        }
    }
}

/// Which job to queue.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verb {
    Start,
    Restart,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Restart => "restart",
        }
    }
}

/// How the end of a job was learned.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Signal,
    Poll,
}

/// A connection to systemd's manager on one bus.
pub struct Systemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
    journal: JournalSource,
    tuning: WaitTuning,
}

impl Systemd {
    /// Connect to the system bus (the host's systemd).
    pub async fn system() -> Result<Self> {
        let conn = zbus::conn::Builder::system()
            .context("system bus address")?
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .await
            .context("cannot connect to the D-Bus system bus (is dbus running?)")?;
        Self::from_connection(conn).await
    }

    /// Connect to the bus at `addr`, e.g. `unix:path=/proc/<pid>/root/run/dbus/system_bus_socket`
    /// for the system bus inside a container. Failure reports still read the *host* journal
    /// unless [`Systemd::with_journal`] says otherwise.
    pub async fn at_address(addr: &str) -> Result<Self> {
        let conn = zbus::conn::Builder::address(addr)
            .with_context(|| format!("bad D-Bus address {addr:?}"))?
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .await
            .with_context(|| format!("cannot connect to the D-Bus bus at {addr}"))?;
        Self::from_connection(conn).await
    }

    async fn from_connection(conn: Connection) -> Result<Self> {
        // No property cache: the manager's properties are never read through this proxy, and a
        // cache would subscribe to PropertiesChanged for nothing.
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .context("systemd manager proxy")?;
        Ok(Systemd {
            conn,
            manager,
            journal: JournalSource::Local,
            tuning: WaitTuning::default(),
        })
    }

    /// Where failure reports read journal lines from.
    pub fn with_journal(mut self, journal: JournalSource) -> Self {
        self.journal = journal;
        self
    }

    pub fn with_tuning(mut self, tuning: WaitTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// `systemctl daemon-reload`: systemd replies only once the reload has finished, so unit
    /// files written before this call are what later jobs see.
    pub async fn daemon_reload(&self) -> Result<()> {
        self.manager
            .reload()
            .await
            .context("systemd daemon-reload (Manager.Reload) failed")
    }

    /// `systemctl enable UNITS`: EnableUnitFiles(runtime=false, force=false), then a reload only
    /// if a symlink changed (so an already-enabled host does not pay for a reload). Returns the
    /// changes as `"symlink /etc/systemd/system/x.wants/u.service -> /etc/systemd/system/u.service"`;
    /// empty when everything was already enabled.
    pub async fn enable(&self, units: &[String]) -> Result<Vec<String>> {
        if units.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = units.iter().map(String::as_str).collect();
        let (carries_install_info, changes) = self
            .manager
            .enable_unit_files(&names, false, false)
            .await
            .with_context(|| format!("systemd could not enable {}", units.join(" ")))?;
        if !carries_install_info {
            // Same warning as systemctl: nothing in [Install], so "enable" cannot do anything.
            tracing::warn!(units = %units.join(" "), "units have no [Install] section; enable is a no-op");
        }
        let changes: Vec<String> = changes
            .into_iter()
            .map(|(kind, file, dest)| format!("{kind} {file} -> {dest}"))
            .collect();
        if !changes.is_empty() {
            self.daemon_reload().await?;
        }
        Ok(changes)
    }

    /// Start `unit` (mode "replace") and wait for the result until `deadline` has elapsed.
    /// Starting an already active unit is a no-op job: nothing restarts, NRestarts and
    /// ActiveEnterTimestamp stay as they were. D-Bus refusals (no such unit, bad unit file) are
    /// errors; everything that happens to the job afterwards is an [`Outcome`].
    pub async fn start(&self, unit: &str, deadline: Duration) -> Result<Outcome> {
        self.run_job(Verb::Start, unit, deadline, None).await
    }

    /// Start (or, with `restart`, restart) like [`Self::start`], and send on `queued` as soon as
    /// systemd has the job (or refused it). Callers that start many units at once queue them in
    /// their dependency order this way: `After=` only orders jobs that are in the queue together.
    pub async fn start_queued(
        &self,
        unit: &str,
        restart: bool,
        deadline: Duration,
        queued: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Outcome> {
        let verb = if restart { Verb::Restart } else { Verb::Start };
        self.run_job(verb, unit, deadline, Some(queued)).await
    }

    /// Restart `unit` (mode "replace"; starts it if it was inactive) and wait like [`Self::start`].
    pub async fn restart(&self, unit: &str, deadline: Duration) -> Result<Outcome> {
        self.run_job(Verb::Restart, unit, deadline, None).await
    }

    /// The unit's current state, read with `GetAll` on its object (no property cache).
    /// A unit systemd does not know is not an error: it reads as `load_state: "not-found"`.
    pub async fn state(&self, unit: &str) -> Result<UnitState> {
        let path = self
            .manager
            .load_unit(unit)
            .await
            .with_context(|| format!("systemd could not load {unit}"))?;
        let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination(DEST)?
            .path(path)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let u = props
            .get_all(InterfaceName::from_static_str_unchecked(UNIT_IFACE))
            .await
            .with_context(|| format!("reading the properties of {unit}"))?;
        let s = if unit.ends_with(".service") {
            props
                .get_all(InterfaceName::from_static_str_unchecked(SERVICE_IFACE))
                .await
                .with_context(|| format!("reading the service properties of {unit}"))?
        } else {
            HashMap::new()
        };
        Ok(UnitState {
            unit: unit.to_string(),
            load_state: prop_str(&u, "LoadState"),
            active_state: prop_str(&u, "ActiveState"),
            sub_state: prop_str(&u, "SubState"),
            result: prop_str(&s, "Result"),
            n_restarts: s
                .get("NRestarts")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            exec_main_status: s
                .get("ExecMainStatus")
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0),
            active_enter_timestamp: u
                .get("ActiveEnterTimestamp")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            unit_file_state: prop_str(&u, "UnitFileState"),
            service_type: prop_str(&s, "Type"),
        })
    }

    /// `systemctl reset-failed UNIT`: clears the failed state and the start rate limit, so a unit
    /// that hit StartLimitBurst can be started again.
    pub async fn reset_failed(&self, unit: &str) -> Result<()> {
        self.manager
            .reset_failed_unit(unit)
            .await
            .with_context(|| format!("systemd could not reset-failed {unit}"))
    }

    async fn run_job(
        &self,
        verb: Verb,
        unit: &str,
        deadline: Duration,
        queued: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<Outcome> {
        let until = Instant::now() + deadline;

        // Read before the job so `start` can tell a no-op (unit was already up, same activation)
        // from a fresh start that still needs the settle check.
        let before = match timeout_at(until, self.state(unit)).await {
            Ok(s) => Some(s?),
            Err(_) => None,
        };

        let end = match timeout_at(until, self.queue_and_wait(verb, unit, queued)).await {
            Ok(r) => Some(r?),
            Err(_) => None,
        };
        let Some((job_result, via)) = end else {
            tracing::warn!(
                unit,
                verb = verb.name(),
                ?deadline,
                "deadline passed before the job finished"
            );
            return self.failed(unit, "timeout").await;
        };
        tracing::debug!(unit, verb = verb.name(), job_result, ?via, "job finished");
        if job_result != "done" {
            return self.failed(unit, &job_result).await;
        }

        let now = self.report_state(unit).await?;
        let noop = verb == Verb::Start
            && before.as_ref().is_some_and(|b| {
                b.active_state == "active" && b.active_enter_timestamp == now.active_enter_timestamp
            });
        if noop && now.is_up() {
            return Ok(Outcome::Active(now));
        }
        // Give a just-started unit a moment to crash: a Type=simple "done" only means forked,
        // and a Restart=on-failure unit that dies at once shows up as activating/auto-restart.
        let settle = self
            .tuning
            .settle
            .min(until.saturating_duration_since(Instant::now()));
        sleep(settle).await;
        let after = self.report_state(unit).await?;
        // A unit with a short RestartSec can crash and be back up within the settle: the
        // restart counter still gives it away.
        if after.is_up() && after.n_restarts == now.n_restarts {
            Ok(Outcome::Active(after))
        } else {
            tracing::warn!(
                unit,
                active_state = after.active_state,
                sub_state = after.sub_state,
                "job was done but the unit did not stay up"
            );
            Ok(self.failed_with(unit, "done", after).await)
        }
    }

    /// Queue the job and wait for its JobRemoved (or for the poll to see it gone).
    /// Unbounded in time: the caller wraps it in the deadline.
    async fn queue_and_wait(
        &self,
        verb: Verb,
        unit: &str,
        queued: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(String, Via)> {
        // The match must be in place before the job exists, or a fast job's signal is lost.
        let mut signals = self
            .manager
            .receive_job_removed()
            .await
            .context("adding the JobRemoved match")?;

        let call = async {
            match verb {
                Verb::Start => self.manager.start_unit(unit, "replace").await,
                Verb::Restart => self.manager.restart_unit(unit, "replace").await,
            }
        };
        tokio::pin!(call);
        // Signals that arrive while the call is in flight: ours may be among them.
        let mut early: Vec<JobRemoved> = Vec::new();
        let mut stream_open = true;
        let job = loop {
            tokio::select! {
                biased;
                reply = &mut call => break reply,
                sig = next(&mut signals), if stream_open => match sig {
                    Some(sig) => early.push(sig),
                    None => stream_open = false,
                },
            }
        };
        if let Some(q) = queued {
            let _ = q.send(());
        }
        let job = job.map_err(|e| dbus_refusal(e, verb, unit))?;
        tracing::debug!(unit, job = %job.as_str(), "job queued");

        if self.tuning.use_signals {
            if let Some(result) = early.iter().find_map(|sig| result_for(sig, &job)) {
                tracing::debug!(unit, "JobRemoved arrived before the StartUnit reply");
                return Ok((result, Via::Signal));
            }
        }

        let poll = sleep(self.jittered_poll());
        tokio::pin!(poll);
        loop {
            tokio::select! {
                sig = next(&mut signals), if stream_open => match sig {
                    Some(sig) => {
                        if !self.tuning.use_signals {
                            continue;
                        }
                        if let Some(result) = result_for(&sig, &job) {
                            return Ok((result, Via::Signal));
                        }
                    }
                    None => {
                        // The connection dropped the match; keep going on the poll alone.
                        tracing::warn!(unit, "JobRemoved stream ended; polling the job queue");
                        stream_open = false;
                    }
                },
                _ = &mut poll => {
                    if self.job_gone(&job).await? {
                        // systemd emits JobRemoved before it drops the job, and the bus keeps
                        // its order, so the signal is normally already queued here: look once
                        // more before falling back to inference.
                        if self.tuning.use_signals && stream_open {
                            while let Ok(Some(sig)) =
                                timeout(Duration::from_millis(50), next(&mut signals)).await
                            {
                                if let Some(result) = result_for(&sig, &job) {
                                    return Ok((result, Via::Signal));
                                }
                            }
                        }
                        return Ok((self.infer_result(unit, &job).await?, Via::Poll));
                    }
                    poll.as_mut().reset(Instant::now() + self.jittered_poll());
                }
            }
        }
    }

    fn jittered_poll(&self) -> Duration {
        let f: f64 = rand::thread_rng().gen_range(0.8..1.2);
        self.tuning.poll_interval.mul_f64(f)
    }

    async fn job_gone(&self, job: &OwnedObjectPath) -> Result<bool> {
        let jobs = self.manager.list_jobs().await.context("ListJobs")?;
        Ok(!jobs.iter().any(|j| j.4 == *job))
    }

    /// The job left the queue without us seeing its JobRemoved: judge by the unit. A dependency
    /// or cancel cannot be told apart from a failure this way, so anything not up is "failed".
    async fn infer_result(&self, unit: &str, job: &OwnedObjectPath) -> Result<String> {
        let s = self.state(unit).await?;
        let result = if s.is_up() { "done" } else { "failed" };
        tracing::warn!(unit, job = %job.as_str(), result, active_state = s.active_state,
            "JobRemoved for our job was not received; result inferred from the unit state");
        Ok(result.to_string())
    }

    /// State read on the reporting path: bounded even when the caller's deadline is gone.
    async fn report_state(&self, unit: &str) -> Result<UnitState> {
        timeout(REPORT_TIMEOUT, self.state(unit))
            .await
            .map_err(|_| {
                anyhow!("systemd did not report the state of {unit} within {REPORT_TIMEOUT:?}")
            })?
    }

    async fn failed(&self, unit: &str, job_result: &str) -> Result<Outcome> {
        let state = self.report_state(unit).await?;
        Ok(self.failed_with(unit, job_result, state).await)
    }

    async fn failed_with(&self, unit: &str, job_result: &str, state: UnitState) -> Outcome {
        let journal = self.journal.tail_async(unit, JOURNAL_LINES).await;
        Outcome::Failed {
            job_result: job_result.to_string(),
            state,
            journal,
        }
    }
}

/// The result carried by `sig` if it is the removal of `job`.
fn result_for(sig: &JobRemoved, job: &OwnedObjectPath) -> Option<String> {
    let a = sig.args().ok()?;
    (a.job == *job).then(|| a.result.clone())
}

/// Next item of a stream, without pulling in futures-util for `StreamExt::next`.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

fn prop_str(props: &HashMap<String, OwnedValue>, name: &str) -> String {
    props
        .get(name)
        .and_then(|v| <&str>::try_from(v).ok())
        .unwrap_or_default()
        .to_string()
}

/// systemd refused to queue the job. Name the unit and keep systemd's own words
/// ("Unit x.service not found.", "... has a bad unit file setting.").
fn dbus_refusal(e: zbus::Error, verb: Verb, unit: &str) -> anyhow::Error {
    let detail = match &e {
        zbus::Error::MethodError(name, Some(msg), _) => format!("{msg} ({})", name.as_str()),
        other => other.to_string(),
    };
    anyhow!("systemd refused to {} {unit}: {detail}", verb.name())
}
