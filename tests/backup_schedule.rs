//! The backup schedule as systemd sees it: every OnCalendar of the rendered timer is accepted by
//! `systemd-analyze calendar` and its next elapse falls inside the window; the timer and service
//! pass `systemd-analyze verify`. And the backup keys: bad values are refused naming the field.
mod common;
use common::*;
use omlboot::backup::schedule::{render_units, Window};
use std::process::Command;

#[test]
fn timer_calendars_fall_in_the_window_and_units_verify() {
    for (days, hours, minute) in [("1-5", "01-04", 0), ("sun", "22-01", 0), ("*", "03", 30)] {
        let w = Window::parse(days, hours, minute).unwrap();
        for cal in w.on_calendar() {
            let out = Command::new("systemd-analyze")
                .args(["calendar", "--iterations=5", &cal])
                .env("TZ", "UTC")
                .output()
                .expect("systemd-analyze");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{cal}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // "Next elapse: Tue 2024-03-05 01:00:00 UTC" and the following iterations.
            let mut n = 0;
            for line in text
                .lines()
                .filter(|l| l.contains("UTC") && (l.contains("elapse") || l.contains("Iter")))
            {
                let stamp = line.split(": ").nth(1).unwrap().trim();
                let out = Command::new("date")
                    .args(["-u", "-d", stamp, "+%s"])
                    .output()
                    .unwrap();
                let t: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
                assert!(
                    w.window_day(t).is_some(),
                    "{cal}: {stamp} is outside the window"
                );
                n += 1;
            }
            assert!(n >= 5, "{cal}: {text}");
        }
        let t = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (path, content) in render_units(&w, bin()) {
            let p = t.path().join(path.rsplit('/').next().unwrap());
            std::fs::write(&p, content).unwrap();
            paths.push(p);
        }
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(&paths)
            .env("SYSTEMD_UNIT_PATH", format!("{}:", t.path().display()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let problems: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.contains("Failed to connect to bus")
                    && !l.contains("System has not been booted")
                    && !l.contains("postgresql.service")
            })
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
    }
}

#[test]
fn backup_keys_are_validated_naming_the_field() {
    for (set, field) in [
        ("backup_hours=25-03", "backup_hours"),
        ("backup_weekdays=8", "backup_weekdays"),
        ("backup_destination=relative/dir", "backup_destination"),
        (
            "backup_path_template={tenant}/{week}",
            "backup_path_template",
        ),
        ("backup_destination=ssh://bk@store/x", "backup_ssh_key_file"),
        ("cron_backup_hh=24", "cron_backup_hh"),
        ("restore_file_timestamp=1681319391", "backup_destination"),
    ] {
        let o = omlboot(&[
            "validate",
            "--role",
            "aio",
            "--set",
            "omni_ip_lan=10.0.0.5",
            "--set",
            set,
        ]);
        assert_eq!(o.status.code(), Some(2), "{set}: {}", stderr(&o));
        assert!(stderr(&o).contains(field), "{set}: {}", stderr(&o));
    }
    // omldeploytool's names are accepted (no longer "unsupported").
    let o = omlboot(&[
        "validate",
        "--role",
        "aio",
        "--set",
        "omni_ip_lan=10.0.0.5",
        "--set",
        "backup_destination=/srv/backups",
        "--set",
        "cron_backup_hh=2",
        "--set",
        "cron_backup_mm=30",
        "--set",
        "restore_file_timestamp=1681319391",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A schedule gives the timer and service apply installs.
    let cfg = omlboot::config::Config::load(&omlboot::config::Sources {
        file: None,
        env: vec![],
        sets: vec![
            "omni_ip_lan=10.0.0.5".into(),
            "backup_destination=/srv/backups".into(),
            "backup_hours=01-04".into(),
        ],
        role: Some("aio".into()),
    })
    .unwrap();
    let units = omlboot::backup::schedule::units(&cfg.settings());
    assert_eq!(units.len(), 2);
    assert!(units[0]
        .1
        .contains("OnCalendar=Mon,Tue,Wed,Thu,Fri,Sat,Sun *-*-* 01..04:00/10:00"));
    assert!(units[1]
        .1
        .contains("ExecStart=/usr/local/bin/omlboot backup --scheduled"));
}

#[test]
fn status_shows_the_last_backup() {
    let root = tempfile::tempdir().unwrap();
    let rec = omlboot::backup::record::Record {
        last_attempt: Some(1_709_622_489),
        last_success: Some(1_709_622_489),
        last_error: None,
        last: Some(omlboot::backup::record::Last {
            name: "acme-20240305T070809Z".into(),
            destination: "/srv/backups".into(),
            created_at: 1_709_622_489,
            size: 9_423_829,
            duration_ms: 18_734,
            verified: true,
            verify_ms: 6_688,
            verify_error: None,
        }),
    };
    rec.save(root.path()).unwrap();
    let o = omlboot(&["status", "--root", root.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("backup: last acme-20240305T070809Z (2024-03-05 07:08:09 UTC) on /srv/backups: 9423829 bytes in 18734 ms, verified in 6688 ms"),
        "{out}"
    );
    let o = omlboot(&[
        "status",
        "--root",
        root.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backup"]["last"]["size"], 9_423_829);
}
