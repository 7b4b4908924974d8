//! Every unit omlboot renders, for every role, passes `systemd-analyze verify`: unknown directives,
//! bad ExecStart paths, broken line continuations and bad dependencies all fail here.
//! Needs systemd-analyze and /usr/bin/podman on the machine (.ci/run installs both).
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn verify_role(config: &str, role: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let o = omlboot(&[
        "render",
        "--config",
        repo(config).to_str().unwrap(),
        "--role",
        role,
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let unit_dir = tmp.path().join("etc/systemd/system");
    let mut units: Vec<String> = std::fs::read_dir(&unit_dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    units.sort();
    assert!(
        units.len() >= 5,
        "{role}: too few units rendered: {units:?}"
    );
    let problems = verify(&units, &unit_dir, &[]);
    assert!(
        problems.is_empty(),
        "{role}: systemd-analyze verify found problems:\n{}",
        problems.join("\n")
    );
}

/// `systemd-analyze verify` of `units`, finding units they name in `unit_dir`. Returns its complaints
/// (every output line when it fails), leaving out lines about the *test machine* (no booted systemd)
/// and lines containing any of `ignore`.
fn verify(units: &[impl AsRef<std::ffi::OsStr>], unit_dir: &Path, ignore: &[&str]) -> Vec<String> {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        // Units name each other (After=redis.service): let verify find them next to each other.
        .env("SYSTEMD_UNIT_PATH", format!("{}:", unit_dir.display()))
        .output()
        .expect("systemd-analyze must be installed (apt-get install systemd)");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let mut problems: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !l.contains("Failed to connect to bus")
                && !l.contains("System has not been booted with systemd")
                && !ignore.iter().any(|i| l.contains(i))
        })
        .map(str::to_string)
        .collect();
    if !out.status.success() && problems.is_empty() {
        problems.push(format!("systemd-analyze verify exited with {}", out.status));
    }
    problems
}

#[test]
fn aio_units_verify() {
    verify_role("tests/fixtures/config/aio.yaml", "aio");
}

#[test]
fn cluster_units_verify() {
    for role in ["data", "voice", "app"] {
        verify_role("tests/fixtures/config/cluster.yaml", role);
    }
}

/// The unit `omlboot bake` installs: it names units of cloud-init that this machine may lack, so
/// only problems with the unit itself count. Verified with the omlboot it runs in place.
#[test]
fn firstboot_unit_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let unit = tmp.path().join("omlboot-firstboot.service");
    let text = std::fs::read_to_string(repo("units/host/omlboot-firstboot.service")).unwrap();
    // Point ExecStart at the test binary: /usr/local/bin/omlboot is not on this machine.
    let text = text.replace("/usr/local/bin/omlboot", env!("CARGO_BIN_EXE_omlboot"));
    std::fs::write(&unit, text).unwrap();
    // It names cloud-init's units, which this machine may lack.
    let problems = verify(&[&unit], tmp.path(), &["cloud-"]);
    assert!(
        problems.is_empty(),
        "systemd-analyze verify:\n{}",
        problems.join("\n")
    );
}
