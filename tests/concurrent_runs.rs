//! issue 10, item 6: two runs at once. While one omlboot holds the host-wide lock, a second
//! `omlboot apply`/`run` on the same root waits, saying so, and touches nothing; state.json stays
//! whole. The first holder here is this test holding the same flock omlboot takes (a real apply
//! on this machine would install packages and pull images).
mod common;
use common::*;
use omlboot::apply::state::{State, Status};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

/// An offline root already provisioned for its machine-id (state says done).
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/machine-id"), format!("{MACHINE_ID}\n")).unwrap();
    let mut s = State::new(&format!("machine-id:{MACHINE_ID}"), "aio");
    s.status = Status::Done;
    s.finished_unix = Some(s.started_unix);
    s.save(root).unwrap();
    dir
}

fn spawn(cmd: &str, root: &Path) -> Child {
    Command::new(bin())
        .args([
            cmd,
            "--root",
            root.to_str().unwrap(),
            "--set",
            "omni_ip_lan=10.0.0.5",
            "--set",
            "infra_env=lan",
            "--set",
            "skip_packages=true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Hold the lock as omlboot does (flock on <root>/run/omlboot.lock).
fn hold_lock(root: &Path) -> nix::fcntl::Flock<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("run/omlboot.lock"))
        .unwrap();
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap()
}

/// Wait until the child's stderr holds `what` (read in a thread so the pipe never fills).
fn stderr_reader(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    rx
}

fn wait_for(rx: &std::sync::mpsc::Receiver<String>, seen: &mut String, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains(what) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => seen.push_str(&s),
            Err(_) => panic!("no {what:?} on stderr; got: {seen}"),
        }
    }
}

#[test]
fn second_apply_waits_with_a_message_and_touches_nothing() {
    let dir = root();
    let state_before = std::fs::read(State::path(dir.path())).unwrap();
    let lock = hold_lock(dir.path());
    let mut child = spawn("apply", dir.path());
    let rx = stderr_reader(&mut child);
    let mut seen = String::new();
    // stderr is unbuffered: the line may arrive in pieces, so wait for its end.
    wait_for(&rx, &mut seen, "is held); waiting");
    assert!(seen.contains("another omlboot is applying"), "{seen}");
    assert!(seen.contains("omlboot.lock"), "{seen}");
    // Still waiting a while later, and nothing written meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "it did not wait: {seen}"
    );
    assert_eq!(
        std::fs::read(State::path(dir.path())).unwrap(),
        state_before
    );
    let names: Vec<_> = std::fs::read_dir(dir.path().join("var/lib/omlboot"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    // Stopped while waiting (say, by systemd): nothing half-done either.
    child.kill().unwrap();
    child.wait().unwrap();
    drop(lock);
    assert_eq!(
        std::fs::read(State::path(dir.path())).unwrap(),
        state_before
    );
    assert!(State::load(dir.path()).unwrap().is_some());
}

#[test]
fn second_run_waits_then_finds_the_work_done() {
    let dir = root();
    let state_before = std::fs::read(State::path(dir.path())).unwrap();
    let lock = hold_lock(dir.path());
    let mut child = spawn("run", dir.path());
    let rx = stderr_reader(&mut child);
    let mut seen = String::new();
    wait_for(&rx, &mut seen, "another omlboot is applying");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "it did not wait: {seen}"
    );
    // The first run finishes: the second goes on, sees this instance is provisioned, does nothing.
    drop(lock);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the second run never finished: {seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(s) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.push_str(&s);
    }
    assert_eq!(status.code(), Some(0), "{seen}");
    assert!(seen.contains("already provisioned"), "{seen}");
    assert_eq!(
        std::fs::read(State::path(dir.path())).unwrap(),
        state_before
    );
}

/// Found by the kill -9 VM scenario: a run killed mid-way leaves state.json saying `running`. While
/// an omlboot holds the lock that is true; once nobody does, `status` says the run was interrupted
/// (exit 1) instead of `running` forever, and `status --wait` does not wait for it.
#[test]
fn a_running_state_nobody_holds_the_lock_for_is_reported_interrupted() {
    let dir = root();
    let mut s = State::new(&format!("machine-id:{MACHINE_ID}"), "aio");
    s.status = Status::Running;
    s.save(dir.path()).unwrap();
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--root", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        Command::new(bin()).args(&args).output().unwrap()
    };

    // An apply holds the lock: it is running.
    let lock = omlboot::apply::state::lock(dir.path()).unwrap();
    let o = status(&[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("running"));
    drop(lock);

    // Nobody holds it: the run was interrupted.
    let o = status(&[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("interrupted"), "{out}");
    let t = Instant::now();
    let o = status(&["--wait", "--timeout", "30"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "status --wait waited"
    );
}
