//! The systemd D-Bus driver against a real systemd + dbus-daemon, booted in systemd-nspawn.
//!
//! Needs root and a Debian-like host with apt (CI: Debian 12 as root). The first run installs
//! mmdebstrap and systemd-container if missing and builds a Debian 12 rootfs (cached under
//! /var/tmp/omlboot-nspawn-<hash>, see tests/nspawn/rootfs.sh); later runs boot it in about a
//! second. One container serves the whole test binary and powers off when the binary exits.
//!
//! The tests talk to the container's system bus from the host through
//! unix:path=/proc/<pid>/root/run/dbus/system_bus_socket (as root, so dbus-daemon and systemd
//! treat us as privileged), write unit files into /proc/<pid>/root/etc/systemd/system, and read
//! its journal by running journalctl inside it with nsenter. Each test uses its own units
//! (tests/nspawn/units), so tests run in parallel.
//!
//! Run: cargo test --test systemd_dbus
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use omlboot::apply::systemd::{JournalSource, Outcome, Systemd, UnitState, WaitTuning};

struct Container {
    pid: u32,
}

static CONTAINER: OnceLock<Result<Container, String>> = OnceLock::new();

/// Tests that depend on *when* a daemon-reload happens take this lock, so that another test's
/// reload cannot land in the middle of them.
static RELOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn container() -> &'static Container {
    match CONTAINER.get_or_init(boot) {
        Ok(c) => c,
        Err(e) => panic!("cannot set up the systemd-nspawn test container: {e}"),
    }
}

fn boot() -> Result<Container, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nspawn/boot.sh");
    let t = Instant::now();
    let out = Command::new(&script)
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); it needs root, apt (for mmdebstrap and systemd-container) and the \
             Debian mirror; its stderr is above",
            script.display(),
            out.status
        ));
    }
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("boot.sh printed no pid: {e}"))?;
    let c = Container { pid };

    // Install every fixture unit at once and reload once, so the tests need not.
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nspawn/units");
    for entry in std::fs::read_dir(&units).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let dest = c.unit_dir().join(path.file_name().unwrap());
        std::fs::copy(&path, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    c.sh("systemctl daemon-reload");
    eprintln!(
        "systemd test container: pid {pid}, ready in {:?}",
        t.elapsed()
    );
    Ok(c)
}

impl Container {
    fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid))
    }

    fn unit_dir(&self) -> PathBuf {
        self.root().join("etc/systemd/system")
    }

    fn nsenter(&self) -> Vec<String> {
        ["nsenter", "-t", &self.pid.to_string(), "-a", "--"]
            .map(String::from)
            .to_vec()
    }

    /// Run a shell command inside the container; returns stdout.
    fn sh(&self, cmd: &str) -> String {
        let out = Command::new("nsenter")
            .args([
                "-t",
                &self.pid.to_string(),
                "-a",
                "--",
                "/bin/sh",
                "-c",
                cmd,
            ])
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write_unit(&self, name: &str, text: &str) {
        std::fs::write(self.unit_dir().join(name), text).expect("write unit");
    }

    async fn systemd(&self, tuning: WaitTuning) -> Systemd {
        let addr = format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid
        );
        Systemd::at_address(&addr)
            .await
            .expect("connect to the container's system bus")
            .with_journal(JournalSource::Command(self.nsenter()))
            .with_tuning(tuning)
    }
}

async fn sd() -> Systemd {
    container().systemd(WaitTuning::default()).await
}

const DEADLINE: Duration = Duration::from_secs(30);

#[track_caller]
fn active(o: Outcome) -> UnitState {
    match o {
        Outcome::Active(s) => s,
        other => panic!("expected Active, got {other:#?}"),
    }
}

#[track_caller]
fn failed(o: Outcome) -> (String, UnitState, Vec<String>) {
    match o {
        Outcome::Failed {
            job_result,
            state,
            journal,
        } => (job_result, state, journal),
        other => panic!("expected Failed, got {other:#?}"),
    }
}

#[tokio::test]
async fn notify_unit_becomes_active() {
    let sd = sd().await;
    let s = active(sd.start("omlt-notify.service", DEADLINE).await.unwrap());
    assert_eq!(s.active_state, "active");
    assert_eq!(s.sub_state, "running");
    assert_eq!(s.load_state, "loaded");
    assert_eq!(s.service_type, "notify");
    assert_eq!(s.result, "success");
    assert_eq!(s.unit_file_state, "static");
    assert!(s.active_enter_timestamp > 0);
}

#[tokio::test]
async fn failing_unit_reports_result_status_and_journal() {
    let sd = sd().await;
    let (job, s, journal) = failed(sd.start("omlt-fail.service", DEADLINE).await.unwrap());
    assert_eq!(job, "failed");
    assert_eq!(s.active_state, "failed");
    assert_eq!(s.result, "exit-code");
    assert_eq!(s.exec_main_status, 1);
    assert!(
        journal.iter().any(|l| l.contains("omlt-fail says goodbye")),
        "journal: {journal:#?}"
    );

    // reset-failed clears the failed state.
    sd.reset_failed("omlt-fail.service").await.unwrap();
    let s = sd.state("omlt-fail.service").await.unwrap();
    assert_eq!(s.active_state, "inactive");
}

#[tokio::test]
async fn crash_right_after_a_done_job_is_a_failure() {
    // Type=simple: the job is "done" at fork; the settle re-read sees the crash/auto-restart.
    let sd = sd().await;
    let (job, s, journal) = failed(sd.start("omlt-crash.service", DEADLINE).await.unwrap());
    assert_eq!(job, "done");
    assert!(!s.is_up() || s.n_restarts > 0, "{s:#?}");
    assert!(
        journal.iter().any(|l| l.contains("omlt-crash is crashing")),
        "journal: {journal:#?}"
    );
    // Stop the flapping so it does not fill the container's journal.
    container().sh("systemctl stop omlt-crash.service");
}

#[tokio::test]
async fn never_ready_unit_times_out_in_systemd() {
    // TimeoutStartSec=2: systemd kills it and fails the job; the unit's Result says why.
    let sd = sd().await;
    let t = Instant::now();
    let (job, s, _) = failed(
        sd.start("omlt-never-ready.service", DEADLINE)
            .await
            .unwrap(),
    );
    assert_eq!(job, "failed");
    assert_eq!(s.result, "timeout");
    assert_eq!(s.active_state, "failed");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[tokio::test]
async fn job_timeout_in_systemd_is_job_result_timeout() {
    // JobTimeoutSec=1: systemd cancels the job itself with result "timeout".
    let sd = sd().await;
    let (job, s, _) = failed(sd.start("omlt-jobtimeout.service", DEADLINE).await.unwrap());
    assert_eq!(job, "timeout");
    assert_ne!(s.active_state, "active");
}

#[tokio::test]
async fn failed_dependency_is_job_result_dependency() {
    let sd = sd().await;
    let (job, s, _) = failed(sd.start("omlt-dep.service", DEADLINE).await.unwrap());
    assert_eq!(job, "dependency");
    assert_eq!(s.active_state, "inactive");
    let dep = sd.state("omlt-dep-bad.service").await.unwrap();
    assert_eq!(dep.active_state, "failed");
}

#[tokio::test]
async fn our_deadline_expires_before_a_slow_start() {
    let sd = sd().await;
    let deadline = Duration::from_secs(2);
    let t = Instant::now();
    let (job, s, _) = failed(sd.start("omlt-slow.service", deadline).await.unwrap());
    let took = t.elapsed();
    assert_eq!(job, "timeout");
    assert_eq!(s.active_state, "activating");
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline + Duration::from_secs(3), "{took:?}");
    container().sh("systemctl stop --no-block omlt-slow.service");
}

#[tokio::test]
async fn canceled_job_is_job_result_canceled() {
    let sd = sd().await;
    let waiter = tokio::spawn(async move { sd.start("omlt-cancel.service", DEADLINE).await });
    // Once the start job is queued, a stop job replaces (cancels) it.
    let c = container();
    let t = Instant::now();
    while !c
        .sh("systemctl list-jobs --no-legend")
        .contains("omlt-cancel.service")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "start job never queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.sh("systemctl stop --no-block omlt-cancel.service");
    let (job, _, _) = failed(waiter.await.unwrap().unwrap());
    assert_eq!(job, "canceled");
}

#[tokio::test]
async fn start_on_an_active_unit_is_a_noop() {
    // A long settle makes "the no-op skipped the settle" visible even on a loaded machine.
    let sd = container()
        .systemd(WaitTuning {
            settle: Duration::from_secs(3),
            ..WaitTuning::default()
        })
        .await;
    let first = active(sd.start("omlt-noop.service", DEADLINE).await.unwrap());
    // Timestamps are in µs: any restart now would show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let again = active(sd.start("omlt-noop.service", DEADLINE).await.unwrap());
    assert_eq!(again.active_enter_timestamp, first.active_enter_timestamp);
    assert_eq!(again.n_restarts, first.n_restarts);
    // No settle wait for a no-op.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn restart_changes_active_enter_timestamp() {
    let sd = sd().await;
    let first = active(sd.start("omlt-restart.service", DEADLINE).await.unwrap());
    let again = active(sd.restart("omlt-restart.service", DEADLINE).await.unwrap());
    assert!(
        again.active_enter_timestamp > first.active_enter_timestamp,
        "{first:#?} {again:#?}"
    );
}

#[tokio::test]
async fn oneshot_success_counts_as_active() {
    let sd = sd().await;
    let s = active(sd.start("omlt-oneshot.service", DEADLINE).await.unwrap());
    assert_eq!(s.active_state, "inactive");
    assert_eq!(s.result, "success");
}

#[tokio::test]
async fn signals_alone_end_the_wait() {
    // No Subscribe() and the poll effectively off: systemd must send JobRemoved to us because we
    // queued the job.
    let sd = container()
        .systemd(WaitTuning {
            poll_interval: Duration::from_secs(3600),
            ..WaitTuning::default()
        })
        .await;
    let t = Instant::now();
    active(sd.start("omlt-sig.service", DEADLINE).await.unwrap());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Again on the now active unit: a no-op job that ends as soon as it is queued, the case
    // where JobRemoved can race the StartUnit reply.
    let t = Instant::now();
    active(sd.start("omlt-sig.service", DEADLINE).await.unwrap());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn missed_signal_is_caught_by_the_poll() {
    // Every JobRemoved is dropped: the ListJobs poll must notice the job is gone and infer the
    // result from the unit, long before the deadline.
    let sd = container()
        .systemd(WaitTuning {
            poll_interval: Duration::from_millis(300),
            use_signals: false,
            ..WaitTuning::default()
        })
        .await;
    let t = Instant::now();
    active(sd.start("omlt-poll.service", DEADLINE).await.unwrap());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let (job, s, _) = failed(sd.start("omlt-fail.service", DEADLINE).await.unwrap());
    assert_eq!(job, "failed");
    assert_eq!(s.result, "exit-code");
}

#[tokio::test]
async fn unknown_and_broken_units_are_clear_errors() {
    let sd = sd().await;
    let e = format!(
        "{:#}",
        sd.start("omlt-nope.service", DEADLINE).await.unwrap_err()
    );
    assert!(
        e.contains("omlt-nope.service") && e.contains("not found"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        sd.restart("omlt-nope.service", DEADLINE).await.unwrap_err()
    );
    assert!(e.contains("restart omlt-nope.service"), "{e}");

    let e = format!(
        "{:#}",
        sd.start("omlt-bad.service", DEADLINE).await.unwrap_err()
    );
    assert!(e.contains("omlt-bad.service") && e.contains("bad"), "{e}");
    assert_eq!(
        sd.state("omlt-bad.service").await.unwrap().load_state,
        "bad-setting"
    );
    assert_eq!(
        sd.state("omlt-nope.service").await.unwrap().load_state,
        "not-found"
    );
}

#[tokio::test]
async fn enable_creates_the_symlink_once() {
    let _g = RELOAD.lock().await;
    let sd = sd().await;
    let units = vec!["omlt-enable.service".to_string()];
    let changes = sd.enable(&units).await.unwrap();
    assert_eq!(
        changes,
        vec![
            "symlink /etc/systemd/system/multi-user.target.wants/omlt-enable.service -> \
             /etc/systemd/system/omlt-enable.service"
                .to_string()
        ]
    );
    let link = container()
        .root()
        .join("etc/systemd/system/multi-user.target.wants/omlt-enable.service");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/etc/systemd/system/omlt-enable.service")
    );
    assert_eq!(
        sd.state("omlt-enable.service")
            .await
            .unwrap()
            .unit_file_state,
        "enabled"
    );
    assert!(sd.enable(&units).await.unwrap().is_empty());
}

#[tokio::test]
async fn daemon_reload_picks_up_an_edited_unit() {
    let _g = RELOAD.lock().await;
    let c = container();
    let sd = sd().await;
    let unit = "omlt-reload.service";
    c.write_unit(
        unit,
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    );
    sd.daemon_reload().await.unwrap();
    // Active, so systemd keeps it loaded (an idle unit would be garbage-collected and simply
    // re-read from disk on the next lookup, reload or not).
    let s = active(sd.start(unit, DEADLINE).await.unwrap());
    assert_eq!(s.service_type, "oneshot");

    c.write_unit(
        unit,
        "[Service]\nType=simple\nExecStart=/bin/sleep infinity\n",
    );
    assert_eq!(sd.state(unit).await.unwrap().service_type, "oneshot");
    sd.daemon_reload().await.unwrap();
    assert_eq!(sd.state(unit).await.unwrap().service_type, "simple");
}
