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
            // In the time zone the shipped aio config sets on the host (TZ), not UTC: systemd reads a
            // calendar in local time unless it names a zone.
            let out = Command::new("systemd-analyze")
                .args(["calendar", "--iterations=5", &cal])
                .env("TZ", "America/Argentina/Cordoba")
                .output()
                .expect("systemd-analyze");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{cal}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // "Next elapse: Tue 2024-03-04 22:00:00 -03", then "(in UTC): Tue 2024-03-05 01:00:00 UTC",
            // and the same for the following iterations.
            let mut n = 0;
            for line in text.lines().filter(|l| l.contains("(in UTC):")) {
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
        first_boot: None,
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

#[test]
fn render_writes_the_schedule_units_and_plan_enables_the_timer() {
    let t = tempfile::tempdir().unwrap();
    let aio = repo("tests/fixtures/config/aio.yaml");
    let out = t.path().join("out");
    let sets = [
        "--set",
        "backup_destination=/srv/backups",
        "--set",
        "backup_hours=01-04",
        "--set",
        "backup_weekdays=1-5",
    ];
    let mut args = vec![
        "render",
        "--config",
        aio.to_str().unwrap(),
        "--role",
        "aio",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(sets);
    let o = omlboot(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let files = tree(&out);
    let mut paths = Vec::new();
    for unit in ["omlboot-backup.timer", "omlboot-backup.service"] {
        let (mode, content) = files
            .get(&format!("etc/systemd/system/{unit}"))
            .unwrap_or_else(|| panic!("{unit} not rendered: {:?}", files.keys()));
        assert_eq!(mode & 0o777, 0o644, "{unit}");
        let text = String::from_utf8_lossy(content);
        assert!(text.contains("managed by omlboot"), "{text}");
        paths.push(out.join("etc/systemd/system").join(unit));
    }
    let timer =
        String::from_utf8_lossy(&files["etc/systemd/system/omlboot-backup.timer"].1).into_owned();
    assert!(
        timer.contains("OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 01..04:00/10:00"),
        "{timer}"
    );
    // systemd's own verifier accepts them as rendered.
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .env(
            "SYSTEMD_UNIT_PATH",
            format!("{}:", out.join("etc/systemd/system").display()),
        )
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !l.contains("Failed to connect to bus")
                && !l.contains("System has not been booted")
                && !l.contains("postgresql.service")
                && !l.contains("/usr/local/bin/omlboot")
        })
        .collect();
    assert!(problems.is_empty(), "{problems:?}");

    // The plan: two 0644 files holding no secret, the timer enabled (and so started) by apply.
    let host = t.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let mut args = vec![
        "plan",
        "--config",
        aio.to_str().unwrap(),
        "--role",
        "aio",
        "--root",
        host.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend(sets);
    let o = omlboot(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps = v["steps"].as_array().expect("steps");
    let file = |p: &str| {
        steps
            .iter()
            .find(|s| s["path"] == p)
            .unwrap_or_else(|| panic!("no step for {p}"))
            .clone()
    };
    for unit in ["omlboot-backup.timer", "omlboot-backup.service"] {
        let s = file(&format!("/etc/systemd/system/{unit}"));
        assert_eq!(s["secret"], false, "{s}");
        assert_eq!(s["mode"], "0644", "{s}");
    }
    let enabled: Vec<String> = steps
        .iter()
        .filter_map(|s| s["units"].as_array())
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    assert!(
        enabled.iter().any(|u| u == "omlboot-backup.timer"),
        "{enabled:?}"
    );
    assert!(!enabled.iter().any(|u| u == "omlboot-backup.service"));

    // Without a schedule: neither unit.
    let out2 = t.path().join("out2");
    let o = omlboot(&[
        "render",
        "--config",
        repo("tests/fixtures/config/aio.yaml").to_str().unwrap(),
        "--role",
        "aio",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out2
        .join("etc/systemd/system/omlboot-backup.timer")
        .exists());
}

#[test]
fn status_shows_the_schedule_and_the_next_window() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "omni_ip_lan: 10.0.0.5\nbackup_destination: /srv/backups\nbackup_hours: \"01-04\"\nbackup_weekdays: \"1-5\"\n",
    )
    .unwrap();
    let o = omlboot(&[
        "status",
        "--config",
        cfg.to_str().unwrap(),
        "--root",
        root.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "backup schedule: Mon,Tue,Wed,Thu,Fri 01:00–04:59 UTC (omlboot-backup.timer); next: "
        ),
        "{out}"
    );
    let o = omlboot(&[
        "status",
        "--config",
        cfg.to_str().unwrap(),
        "--root",
        root.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let next = v["backup_schedule"]["next"].as_u64().expect("next");
    let w = Window::parse("1-5", "01-04", 0).unwrap();
    assert!(w.window_day(next).is_some());
}

#[test]
fn next_window_skips_a_used_window() {
    // 2024-03-05 07:08:09 UTC is a Tuesday; window Mon–Fri 01–04.
    let now = 1_709_622_489;
    let w = Window::parse("1-5", "01-04", 0).unwrap();
    // Wednesday 01:00.
    assert_eq!(w.next_window(now, None), Some(1_709_686_800));
    // Inside Tuesday's window, not yet used: now (to the minute); used: Wednesday.
    let inside = 1_709_600_400 + 125; // Tue 01:02:05
    assert_eq!(w.next_window(inside, None), Some(1_709_600_520));
    assert_eq!(
        w.next_window(inside, Some(inside - 60)),
        Some(1_709_686_800)
    );
    // Friday after the window: Monday.
    let fri = 1_709_856_000 + 6 * 3600; // Fri 2024-03-08 06:00
    assert_eq!(w.next_window(fri, None), Some(1_710_118_800));
    assert_eq!(w.describe(), "Mon,Tue,Wed,Thu,Fri 01:00–04:59 UTC");
}
