//! Reliability on real boots (issue 10): `omlboot apply` killed with SIGKILL at points spread over a
//! fresh apply, then run again, converges to the host it would have made without the kills.
//! VM test: `tests/e2e/run.sh apply_aio_killed` (`#[ignore]` for plain `cargo test`).

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::scenario::{
    assert_bootstrapped_once, assert_units_active, component_units, repo_file, sql, state_json,
    status_json, test_overrides,
};
use harness::{GuestSpec, Lab, UserData};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Boot and cloud-init (which does not provision here).
const BOOT: Duration = Duration::from_secs(900);
/// One kill point: the wait for its stage, which may follow a whole images step on a busy machine.
const KILL_POINT: Duration = Duration::from_secs(1800);
/// The final, uninterrupted apply.
const FINAL_APPLY: Duration = Duration::from_secs(1800);

/// The kill points of one fresh apply, in the order an apply reaches them (see tests/e2e/guest-killat.sh).
const POINTS: [(&str, &str); 6] = [
    ("start", "before anything (at once)"),
    ("files", "during the file writes"),
    ("images", "during the image pulls"),
    ("units", "during the unit starts"),
    ("tasks", "during a bootstrap task"),
    ("probes", "after the probes started"),
];

/// cloud-config/aio.yaml as a user-data that writes omlboot's config but does not run omlboot: its
/// `runcmd` entries that call omlboot are taken out (the test runs `omlboot apply` itself).
fn aio_without_omlboot_run() -> String {
    let text = repo_file("cloud-config/aio.yaml");
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("aio.yaml parses");
    let map = doc.as_mapping_mut().expect("aio.yaml is a mapping");
    let runcmd = map
        .get_mut("runcmd")
        .and_then(|r| r.as_sequence_mut())
        .expect("aio.yaml has a runcmd list");
    let before = runcmd.len();
    runcmd.retain(|entry| !serde_yaml_ng::to_string(entry).unwrap().contains("omlboot"));
    assert!(runcmd.len() < before, "aio.yaml's runcmd runs omlboot");
    if runcmd.is_empty() {
        map.remove("runcmd");
    }
    let body = serde_yaml_ng::to_string(&doc).unwrap();
    assert!(!body.contains("omlboot, run") && !body.contains("omlboot run"));
    format!("#cloud-config\n{body}")
}

/// `key=value` lines of guest-killat.sh.
fn parse_report(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// omlboot's atomic-write temp files (`.NAME.omlboot-PID`, src/fsutil.rs) anywhere it writes.
fn temp_files(g: &harness::Guest) -> Vec<String> {
    g.sh("find /etc /var/lib/omlboot -xdev -name '.*.omlboot-*' 2>/dev/null || true")
        .lines()
        .map(str::to_string)
        .collect()
}

fn secrets_hash(g: &harness::Guest) -> Option<String> {
    g.exec("sha256sum /var/lib/omlboot/secrets.yaml")
        .unwrap()
        .ok()
        .then(|| g.sh("sha256sum /var/lib/omlboot/secrets.yaml")[..64].to_string())
}

/// The host-wide apply lock can be taken: no dead run holds it.
fn lock_free(g: &harness::Guest) -> bool {
    g.exec("flock -n /run/omlboot.lock true").unwrap().ok()
}

/// One row of the table.
struct Row {
    point: &'static str,
    what: &'static str,
    report: BTreeMap<String, String>,
    state: String,
    units: String,
    temps: usize,
    lock: bool,
    secrets: String,
    /// What `omlboot status` tells the operator after the kill: exit code and status.
    status: String,
}

#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh apply_aio_killed"]
fn apply_aio_killed_at_every_stage_converges() {
    let t0 = Instant::now();
    let ud = UserData::with_overrides(&aio_without_omlboot_run(), &[&test_overrides("")]);
    let lab = Lab::boot_one(GuestSpec::new("reliability-aio", ud).mem_mb(3072)).expect("boot");
    let g = &lab.guests[0];
    g.expect_cloud_init(BOOT);
    assert!(
        g.file_stat("/etc/omlboot/config.yaml").unwrap().is_some(),
        "the user-data writes omlboot's config"
    );
    assert!(
        g.file_stat("/var/lib/omlboot/state.json")
            .unwrap()
            .is_none(),
        "nothing ran omlboot yet"
    );
    let killat = std::fs::read(harness::artifacts::e2e_dir().join("guest-killat.sh")).unwrap();
    g.write_file("/root/killat.sh", &killat).unwrap();
    // Every component unit of the plan, to count the active ones at each kill.
    let plan: serde_json::Value =
        serde_json::from_str(&g.sh("omlboot plan --format json 2>/dev/null")).expect("plan JSON");
    let planned: Vec<String> = plan["components"]
        .as_array()
        .expect("plan components")
        .iter()
        .map(|c| c["unit"].as_str().unwrap().to_string())
        .collect();
    assert!(planned.len() >= 20, "aio runs every component: {planned:?}");
    let active_count = |g: &harness::Guest| -> usize {
        g.exec(&format!("systemctl is-active {}", planned.join(" ")))
            .unwrap()
            .stdout
            .lines()
            .filter(|l| l.trim() == "active")
            .count()
    };

    let mut rows: Vec<Row> = vec![];
    let mut first_secrets: Option<String> = None;
    for (i, (point, what)) in POINTS.iter().enumerate() {
        let out = g
            .exec_timeout(
                &format!("bash /root/killat.sh {i} {point} {}", KILL_POINT.as_secs()),
                KILL_POINT + Duration::from_secs(120),
            )
            .unwrap();
        let report = parse_report(&out.stdout);
        let log = g
            .read_file(&format!("/root/apply-{i}.log"))
            .unwrap()
            .unwrap_or_default();
        assert!(
            out.ok() && report.get("killed").map(String::as_str) == Some(*point),
            "kill point {point}: not reached\n{}\n{}\n--- /root/apply-{i}.log ---\n{log}",
            out.stdout,
            out.stderr
        );
        assert_eq!(report["exit"], "137", "omlboot died of the SIGKILL");
        let st = g
            .read_file("/var/lib/omlboot/state.json")
            .unwrap()
            .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("state.json parses"));
        let state = match &st {
            None => "no state.json".to_string(),
            Some(s) => {
                let steps = s["steps"].as_array().unwrap();
                format!(
                    "{}, {} steps, last `{}`",
                    s["status"].as_str().unwrap_or("?"),
                    steps.len(),
                    steps.last().and_then(|l| l["name"].as_str()).unwrap_or("-")
                )
            }
        };
        // The kill landed where it was meant to.
        if let Some(s) = &st {
            let names: Vec<&str> = s["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["name"].as_str())
                .collect();
            let has = |p: &str| names.iter().any(|n| n.starts_with(p));
            let landed = match *point {
                "start" => true,
                "files" => has("file ") && !has("images"),
                "images" => !has("images") && !report["pull"].is_empty(),
                "units" => has("enable ") && !has("probe ") && !has("task "),
                "tasks" => !report["task"].is_empty(),
                "probes" => has("probe "),
                _ => unreachable!(),
            };
            assert!(
                landed,
                "kill point {point} landed elsewhere: {state}\n{names:?}\n{out:?}"
            );
        }
        let secrets = match (secrets_hash(g), &first_secrets) {
            (None, None) => "not written yet".to_string(),
            (Some(h), None) => {
                first_secrets = Some(h.clone());
                format!("written ({})", &h[..12])
            }
            (Some(h), Some(f)) => {
                assert_eq!(&h, f, "secrets.yaml changed after kill point {point}");
                "unchanged".to_string()
            }
            (None, Some(_)) => panic!("secrets.yaml vanished after kill point {point}"),
        };
        let status = g.exec("omlboot status --format json").unwrap();
        let status = format!(
            "{} (exit {})",
            serde_json::from_str::<serde_json::Value>(&status.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_string))
                .unwrap_or_else(|| status.stdout.trim().chars().take(40).collect()),
            status.code
        );
        let row = Row {
            status,
            point,
            what,
            state,
            units: format!(
                "{}/{} active, {} start jobs queued",
                active_count(g),
                planned.len(),
                report["jobs"]
            ),
            temps: temp_files(g).len(),
            lock: lock_free(g),
            secrets,
            report,
        };
        assert!(row.lock, "the lock of a killed run is not held");
        let running = [
            (!row.report["pull"].is_empty()).then(|| format!("podman {}", row.report["pull"])),
            (!row.report["task"].is_empty()).then(|| row.report["task"].clone()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        eprintln!(
            "E2E-FIGURE kill -9 #{i} {what}: after {:.1}s; running then: {}; state.json: {}; units: {}; temp files: {}; lock free: {}; secrets.yaml: {}; omlboot status: {}",
            row.report["after_ms"].parse::<f64>().unwrap_or(0.0) / 1000.0,
            if running.is_empty() { "-" } else { &running },
            row.state,
            row.units,
            row.temps,
            row.lock,
            row.secrets,
            row.status
        );
        rows.push(row);
    }

    // The run that is not interrupted.
    let t = Instant::now();
    let fin = g
        .exec_timeout("omlboot apply", FINAL_APPLY)
        .expect("final apply");
    let took = t.elapsed();
    assert_eq!(
        fin.code, 0,
        "the apply after the kills must succeed\n{}\n{}",
        fin.stdout, fin.stderr
    );
    eprintln!(
        "E2E-FIGURE kill -9 then a full apply: exit 0 after {:.0}s",
        took.as_secs_f64()
    );

    // Done, every component active and enabled.
    let (code, st) = status_json(g);
    assert_eq!((code, st["status"].as_str()), (0, Some("done")), "{st:#}");
    let units = component_units(g);
    assert_eq!(units.len(), planned.len());
    assert_units_active(g, &units);
    // Files and modes exactly what `render` produces for the same config and the kept secrets.
    let diff = g.exec("rm -rf /tmp/r && omlboot render --out /tmp/r >/dev/null 2>&1 && for f in /tmp/r/etc/default/* /tmp/r/etc/systemd/system/*; do h=${f#/tmp/r}; cmp -s \"$f\" \"$h\" || echo \"DIFF $h\"; [ \"$(stat -c %a \"$f\")\" = \"$(stat -c %a \"$h\")\" ] || echo \"MODE $h\"; done").unwrap();
    assert!(
        diff.ok() && diff.stdout.trim().is_empty(),
        "host differs from render: {}{}",
        diff.stdout,
        diff.stderr
    );
    // No temp file left, the lock free, the secrets as first written.
    let temps = temp_files(g);
    assert!(temps.is_empty(), "temp files left: {temps:?}");
    assert!(lock_free(g), "the lock is held after the last run");
    assert_eq!(
        secrets_hash(g),
        first_secrets,
        "secrets.yaml changed since it was first written"
    );
    // PostgreSQL's volume was initialised by the first start with the generated password: the password
    // the host's files hold now still logs in.
    assert_eq!(sql(g, "SELECT 1"), "1", "django.env's password logs in");
    // Every bootstrap task succeeded (in this run, or in a killed one); the run-once admin reset exactly once.
    let state = state_json(g);
    let tasks = assert_bootstrapped_once(g, &state);
    eprintln!(
        "E2E-FIGURE kill -9 bootstrap task successes: {}",
        tasks.join(", ")
    );

    // The table for the README.
    eprintln!("E2E-FIGURE kill -9 table:");
    eprintln!("E2E-FIGURE | # | killed | after | running then | state.json at the kill | component units | temp files | lock | secrets.yaml | `omlboot status` |");
    eprintln!("E2E-FIGURE |---|---|---|---|---|---|---|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        let running = [
            (!r.report["pull"].is_empty()).then(|| format!("podman {}", r.report["pull"])),
            (!r.report["task"].is_empty()).then(|| r.report["task"].clone()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        eprintln!(
            "E2E-FIGURE | {i} | {} ({}) | {:.1} s | {} | {} | {} | {} | {} | {} | {} |",
            r.what,
            r.point,
            r.report["after_ms"].parse::<f64>().unwrap_or(0.0) / 1000.0,
            if running.is_empty() { "-" } else { &running },
            r.state,
            r.units,
            r.temps,
            if r.lock { "free" } else { "HELD" },
            r.secrets,
            r.status
        );
    }
    eprintln!(
        "E2E-FIGURE | final | - | {:.0} s (exit 0) | - | done | {n}/{n} active | 0 | free | unchanged | done (exit 0) |",
        took.as_secs_f64(),
        n = units.len()
    );
    eprintln!(
        "E2E-FIGURE kill -9 scenario total {:.0}s",
        t0.elapsed().as_secs_f64()
    );
}
