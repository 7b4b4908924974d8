//! issue 10, item 2 (power cut): `omlboot run` enables omlboot-firstboot.service before its first change,
//! so a run cut short by a power loss goes on at the next boot. cloud-init does not help there: it writes
//! a module's once-per-instance semaphore before running it, so the same instance never runs an
//! interrupted `runcmd` again. The VM scenario is tests/e2e_powercut.rs.
mod common;
use common::*;
use omlboot::apply::state::{State, Status};
use std::path::Path;

const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";
const UNIT: &str = "etc/systemd/system/omlboot-firstboot.service";
const WANTS: &str = "etc/systemd/system/multi-user.target.wants/omlboot-firstboot.service";

fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/machine-id"), format!("{MACHINE_ID}\n")).unwrap();
    dir
}

/// `cmd` on an offline root whose apply stops before the first change of the host: at its preflight (the
/// image bundle does not exist), or earlier where no systemd answers on the system bus.
fn stopped_early(cmd: &str, root: &Path) -> std::process::Output {
    omlboot(&[
        cmd,
        "--root",
        root.to_str().unwrap(),
        "--set",
        "omni_ip_lan=10.0.0.5",
        "--set",
        "infra_env=lan",
        "--set",
        "skip_packages=true",
        "--set",
        "image_bundle=/nonexistent/omlboot-bundle.tar",
    ])
}

/// The unit file or its enabling symlink (which points at the live host's path) is in the root.
fn armed(root: &Path) -> bool {
    root.join(UNIT).exists() || std::fs::symlink_metadata(root.join(WANTS)).is_ok()
}

/// The apply stopped with an error before writing anything of the plan.
fn assert_nothing_applied(root: &Path, err: &str) {
    assert!(err.contains("error"), "{err}");
    assert!(!root.join("etc/default").exists(), "{err}");
}

#[test]
fn run_enables_the_first_boot_unit_before_its_first_change() {
    let dir = root();
    let o = stopped_early("run", dir.path());
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_nothing_applied(dir.path(), &stderr(&o));
    // Enabled the way `systemctl enable` would, for the next boot.
    let unit = std::fs::read_to_string(dir.path().join(UNIT)).unwrap();
    assert_eq!(unit, omlboot::bake::FIRSTBOOT_UNIT_TEXT);
    assert!(unit.contains("ExecStart=/usr/local/bin/omlboot run"));
    assert_eq!(
        std::fs::read_link(dir.path().join(WANTS)).unwrap(),
        Path::new("/etc/systemd/system/omlboot-firstboot.service")
    );
    assert!(
        stderr(&o).contains("the next boot runs it again"),
        "{}",
        stderr(&o)
    );
    // A second run writes nothing more and says nothing about it.
    let again = stopped_early("run", dir.path());
    assert!(
        !stderr(&again).contains("enabled omlboot-firstboot.service"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn apply_and_a_provisioned_instance_leave_the_first_boot_unit_alone() {
    // `apply` is the operator's command, not the first boot's.
    let dir = root();
    let o = stopped_early("apply", dir.path());
    assert_ne!(o.status.code(), Some(0));
    assert!(!armed(dir.path()));

    // `run` on an instance that is provisioned does nothing at all.
    let dir = root();
    let mut s = State::new(&format!("machine-id:{MACHINE_ID}"), "aio");
    s.status = Status::Done;
    s.finished_unix = Some(s.started_unix);
    s.save(dir.path()).unwrap();
    let o = stopped_early("run", dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("already provisioned"), "{}", stderr(&o));
    assert!(!armed(dir.path()));
}

#[test]
fn run_after_an_interrupted_run_of_the_same_instance_provisions_again() {
    // What the next boot finds after a power cut: state.json says `running` for this instance, and
    // nobody holds the lock. `run` must not take that for the run-once marker.
    let dir = root();
    let mut s = State::new(&format!("machine-id:{MACHINE_ID}"), "aio");
    s.status = Status::Running;
    s.save(dir.path()).unwrap();
    let o = stopped_early("run", dir.path());
    assert!(
        !stderr(&o).contains("already provisioned"),
        "{}",
        stderr(&o)
    );
    assert_nothing_applied(dir.path(), &stderr(&o));
    assert!(armed(dir.path()));
}
