//! The apt back end on this Debian host, for real: dpkg-query, apt-get, the dpkg frontend lock.
//!
//! Tests that install or hold locks share the host's dpkg, so they take turns (SERIAL), and each
//! one purges what it installs, on failure too. Small packages: `hello` and `sl`.
//! Needs root and a reachable Debian mirror the first time a package is fetched.
use omlboot::apply::packages::{self, Family, PackageError, PackageOptions};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn dpkg_installed(name: &str) -> bool {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).ends_with(" installed")
}

fn purge(list: &[&str]) {
    let out = Command::new("apt-get")
        .args(["-y", "-q", "-o", "DPkg::Lock::Timeout=120", "purge"])
        .args(list)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apt-get purge {list:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Purges on drop, so a failing assertion does not leave the package behind.
struct Purge(&'static [&'static str]);
impl Drop for Purge {
    fn drop(&mut self) {
        purge(self.0);
    }
}

/// A separate process holding an fcntl write lock on `path` (as dpkg and apt take it) for `secs`.
struct LockHolder(Child);

impl LockHolder {
    fn hold(path: &Path, secs: f64) -> LockHolder {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import fcntl, sys, time\n\
                 f = open(sys.argv[1], 'a')\n\
                 fcntl.lockf(f, fcntl.LOCK_EX)\n\
                 print('locked', flush=True)\n\
                 time.sleep(float(sys.argv[2]))",
            ])
            .arg(path)
            .arg(secs.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed to hold a lock");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked", "lock holder did not start");
        LockHolder(child)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn installed_packages_are_left_alone() {
    let _turn = SERIAL.lock().await;
    let out = packages::ensure(
        Family::Apt,
        &names(&["coreutils", "dpkg", "coreutils"]),
        &PackageOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.already, names(&["coreutils", "dpkg"]));
    assert!(out.installed.is_empty());

    // A pinned version is checked under the bare name.
    let version = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "coreutils"])
        .output()
        .unwrap();
    let pinned = format!("coreutils={}", String::from_utf8_lossy(&version.stdout));
    let out = packages::ensure(
        Family::Apt,
        std::slice::from_ref(&pinned),
        &PackageOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.already, vec![pinned]);

    // Dry run: query only.
    assert!(
        !dpkg_installed("hello"),
        "hello should not be installed yet"
    );
    let dry = PackageOptions {
        dry_run: true,
        ..PackageOptions::default()
    };
    let out = packages::ensure(Family::Apt, &names(&["coreutils", "hello"]), &dry)
        .await
        .unwrap();
    assert_eq!(out.already, names(&["coreutils"]));
    assert_eq!(out.would_install, names(&["hello"]));
    assert!(!dpkg_installed("hello"));
}

#[tokio::test]
async fn missing_package_is_installed_once() {
    let _turn = SERIAL.lock().await;
    let _cleanup = Purge(&["hello"]);
    assert!(!dpkg_installed("hello"));
    let opts = PackageOptions::default();
    let first = packages::ensure(Family::Apt, &names(&["coreutils", "hello"]), &opts)
        .await
        .unwrap();
    assert_eq!(first.already, names(&["coreutils"]));
    assert_eq!(first.installed, names(&["hello"]));
    assert!(dpkg_installed("hello"));

    let second = packages::ensure(Family::Apt, &names(&["coreutils", "hello"]), &opts)
        .await
        .unwrap();
    assert_eq!(second.already, names(&["coreutils", "hello"]));
    assert!(second.installed.is_empty());
    let json = serde_json::to_value(&second).unwrap();
    assert_eq!(json["installed"], serde_json::json!([]));
}

#[tokio::test]
async fn unknown_package_is_named_and_nothing_is_installed() {
    let _turn = SERIAL.lock().await;
    let _cleanup = Purge(&["hello"]);
    let bogus = "omlboot-no-such-package";
    let err = packages::ensure(
        Family::Apt,
        &names(&["hello", bogus]),
        &PackageOptions::default(),
    )
    .await
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(bogus), "{text}");
    assert!(
        text.contains("Unable to locate package"),
        "tail of apt's output: {text}"
    );
    match err.downcast_ref::<PackageError>() {
        Some(PackageError::NotFound { names, .. }) => assert_eq!(names, &[bogus.to_string()]),
        other => panic!("want NotFound, got {other:?}"),
    }
    assert!(
        !dpkg_installed("hello"),
        "one transaction: nothing installed"
    );

    let err = packages::ensure(
        Family::Apt,
        &names(&["-o=evil"]),
        &PackageOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<PackageError>(),
            Some(PackageError::InvalidName(_))
        ),
        "{err:#}"
    );
}

#[tokio::test]
async fn waits_for_the_dpkg_lock_then_installs() {
    let _turn = SERIAL.lock().await;
    let _cleanup = Purge(&["sl"]);
    assert!(!dpkg_installed("sl"));
    let started = Instant::now();
    let holder = LockHolder::hold(Path::new("/var/lib/dpkg/lock-frontend"), 2.0);
    let out = packages::ensure(Family::Apt, &names(&["sl"]), &PackageOptions::default())
        .await
        .unwrap();
    drop(holder);
    assert_eq!(out.installed, names(&["sl"]));
    assert!(dpkg_installed("sl"));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "apt cannot have run before the lock was let go: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn lock_deadline_gives_a_clear_error() {
    let _turn = SERIAL.lock().await;
    assert!(!dpkg_installed("sl"));
    let _holder = LockHolder::hold(Path::new("/var/lib/dpkg/lock-frontend"), 5.0);
    let opts = PackageOptions {
        lock_deadline: Duration::from_secs(1),
        ..PackageOptions::default()
    };
    let started = Instant::now();
    let err = packages::ensure(Family::Apt, &names(&["sl"]), &opts)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = format!("{err:#}");
    match err.downcast_ref::<PackageError>() {
        Some(PackageError::Lock { path, holder, .. }) => {
            assert_eq!(path, "/var/lib/dpkg/lock-frontend");
            assert!(
                holder.as_deref().unwrap_or_default().contains("python3"),
                "{text}"
            );
        }
        other => panic!("want a lock error, got {other:?}: {text}"),
    }
    assert!(
        text.contains("waiting for the package manager lock"),
        "{text}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "deadline not kept: {elapsed:?}"
    );
    assert!(!dpkg_installed("sl"));
}

/// Our own wait (used before `apt-get update`, which does not wait): on a private file, so it
/// does not touch the host's locks.
#[tokio::test]
async fn lock_wait_helper() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    std::fs::write(&lock, "").unwrap();
    let path = lock.to_str().unwrap();
    assert_eq!(packages::lock_holder(&lock), None);

    let _h = LockHolder::hold(&lock, 1.0);
    let holder = packages::lock_holder(&lock).unwrap();
    assert!(holder.contains("python3"), "{holder}");
    let started = Instant::now();
    let total = Duration::from_secs(10);
    packages::wait_for_locks(&[path], Instant::now() + total, total)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));

    let _h = LockHolder::hold(&lock, 5.0);
    let short = Duration::from_millis(300);
    let err = packages::wait_for_locks(&[path], Instant::now() + short, short)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(path), "{err}");
}

#[tokio::test]
async fn one_query_tells_installed_from_removed_and_unknown() {
    let _turn = SERIAL.lock().await;
    // `hello` purged: dpkg may still list it as not-installed; an unknown name makes dpkg-query exit 1.
    purge(&["hello"]);
    let asked = names(&[
        "coreutils",
        "dpkg/stable",
        "hello",
        "no-such-package-omlboot",
    ]);
    let got = packages::installed(Family::Apt, &asked).await.unwrap();
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        names(&["coreutils", "dpkg/stable"])
    );
    assert!(packages::installed(Family::Apt, &names(&["-o=x"]))
        .await
        .is_err());
}
