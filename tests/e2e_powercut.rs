//! Power cut on a real boot (issue 10, item 2): the guest's QEMU is stopped hard (SIGKILL, no shutdown) in the
//! middle of the first boot's `omlboot run`, when some component units are active (PostgreSQL's probe passed)
//! and the run is not done; then the same disk boots again (same root overlay, same seed and instance-id,
//! same payload) and `omlboot run` must complete on that boot.
//!
//! What runs it again: not cloud-init, which writes the `scripts_user` semaphore before it runs the `runcmd`
//! script, so the same instance never runs it again; `omlboot run` enabled `omlboot-firstboot.service`
//! before its first change, and that unit runs `omlboot run` at every boot (tests/run_resume.rs).
//! VM test: `tests/e2e/run.sh powercut` (`#[ignore]` for plain `cargo test`).

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::scenario::{
    assert_bootstrapped_once, assert_units_active, component_units, first_boot_seconds,
    https_status, repo_file, sql, state_json, status_json, test_overrides,
};
use harness::{GuestSpec, Lab, UserData};
use serde_json::Value;
use std::time::{Duration, Instant};

/// First boot to the cut point: boot, cloud-init, omlboot's files and image pulls, the first unit active.
const TO_THE_CUT: Duration = Duration::from_secs(2400);
/// Second boot: boot, cloud-init, and the resumed `omlboot run` to done.
const SECOND_BOOT: Duration = Duration::from_secs(2400);
const POLL: Duration = Duration::from_secs(2);

/// What the guest said at one poll: state.json, the secrets' hash, the guest's clock and uptime, and
/// whether cloud-init had finished.
struct Poll {
    state: Option<Value>,
    secrets_sha256: String,
    now_unix: u64,
    uptime_s: f64,
    cloud_init_finished: bool,
    /// Units systemd says are active (all of them, `systemctl list-units`), when asked for.
    active_units: Vec<String>,
}

fn poll(g: &harness::Guest, with_units: bool) -> anyhow::Result<Poll> {
    let units = if with_units {
        "systemctl list-units --type=service --state=active --no-legend --plain | cut -d' ' -f1"
    } else {
        "true"
    };
    let o = g.exec_timeout(
        &format!(
            "cat /var/lib/omlboot/state.json 2>/dev/null; echo @@; \
             sha256sum /var/lib/omlboot/secrets.yaml 2>/dev/null | cut -c1-64; echo @@; \
             date +%s; cut -d' ' -f1 /proc/uptime; echo @@; \
             test -e /run/cloud-init/result.json && echo finished; echo @@; {units}"
        ),
        Duration::from_secs(60),
    )?;
    let parts: Vec<&str> = o.stdout.split("@@\n").collect();
    anyhow::ensure!(parts.len() == 5, "unexpected poll output: {}", o.stdout);
    let mut clock = parts[2].split_whitespace();
    Ok(Poll {
        state: serde_json::from_str(parts[0].trim()).ok(),
        secrets_sha256: parts[1].trim().to_string(),
        now_unix: clock.next().unwrap_or("0").parse()?,
        uptime_s: clock.next().unwrap_or("0").parse()?,
        cloud_init_finished: parts[3].trim() == "finished",
        active_units: parts[4].lines().map(str::to_string).collect(),
    })
}

/// Components whose state.json record is `active`, and all of them.
fn components_active(state: &Value) -> (usize, usize) {
    let c = state["components"].as_object().expect("components");
    (
        c.values().filter(|c| c["state"] == "active").count(),
        c.len(),
    )
}

/// The cut point: omlboot is running, component units are active (so the images are loaded and some
/// units started) and the secrets are written. Not before PostgreSQL's probe passed: its image, like the
/// official one, initialises the data volume on the first start and takes any volume with a PG_VERSION
/// for initialised, so a cut inside that initdb breaks the database whatever omlboot does.
fn at_cut_point(p: &Poll) -> bool {
    p.state.as_ref().is_some_and(|s| {
        s["status"] == "running"
            && components_active(s).0 >= 1
            && s["components"]["postgresql"]["probe"]["passed"] == true
            && !p.secrets_sha256.is_empty()
    })
}

fn summary(state: &Value) -> String {
    let steps = state["steps"].as_array().unwrap();
    format!(
        "{}, {} steps, last `{}`",
        state["status"].as_str().unwrap_or("?"),
        steps.len(),
        steps.last().and_then(|l| l["name"].as_str()).unwrap_or("-")
    )
}

/// omlboot's atomic-write temp files (`.NAME.omlboot-PID`, src/fsutil.rs) anywhere it writes.
fn temp_files(g: &harness::Guest) -> Vec<String> {
    g.sh("find /etc /var/lib/omlboot -xdev -name '.*.omlboot-*' 2>/dev/null || true")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "boots a VM twice; run with tests/e2e/run.sh powercut"]
fn powercut_aio_first_boot_resumes_and_completes_on_the_next_boot() {
    let t0 = Instant::now();
    let ud = UserData::with_overrides(&repo_file("cloud-config/aio.yaml"), &[&test_overrides("")]);
    let spec = GuestSpec::new("powercut-aio", ud)
        .mem_mb(3072)
        .persistent_root();
    let mut lab = Lab::boot_one(spec).expect("boot");
    let g = &mut lab.guests[0];

    // ---- first boot: wait for the middle of `omlboot run`, then cut the power ----
    let deadline = Instant::now() + TO_THE_CUT;
    let mut last: Option<Poll> = None;
    loop {
        if let Some(st) = g.exited() {
            panic!(
                "QEMU exited ({st}) before the cut point\n{}",
                g.read_serial_log()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "no cut point after {TO_THE_CUT:?}; state.json: {}\n{}",
                last.as_ref()
                    .and_then(|p| p.state.as_ref())
                    .map(summary)
                    .unwrap_or_else(|| "none".into()),
                g.read_serial_log()
            );
        }
        // The agent starts with the guest's userland; until then, and when a poll times out under
        // TCG, try again.
        if let Ok(p) = poll(g, false) {
            if let Some(s) = &p.state {
                assert!(
                    s["status"] == "running",
                    "the first boot's run ended before any unit was active: {}\n{:#}",
                    summary(s),
                    s
                );
            }
            assert!(
                !p.cloud_init_finished,
                "cloud-init finished before the cut point"
            );
            let reached = at_cut_point(&p);
            last = Some(p);
            if reached {
                break;
            }
        }
        std::thread::sleep(POLL);
    }
    // Right before the cut: one more look, with systemd's view of the units.
    let before = poll(g, true).expect("poll before the cut");
    assert!(
        at_cut_point(&before),
        "the run moved past the cut point: {}",
        before.state.as_ref().map(summary).unwrap_or_default()
    );
    let host_elapsed = g.uptime_on_host();
    let status = g.power_cut().expect("power cut");
    assert!(
        status.contains("signal: 9"),
        "QEMU died of the SIGKILL: {status}"
    );

    let cut_state = before.state.as_ref().unwrap();
    assert!(
        cut_state["finished_unix"].is_null(),
        "no run-once marker before the cut: the run is not finished: {cut_state:#}"
    );
    let instance = cut_state["instance_id"].as_str().unwrap().to_string();
    let (active, planned) = components_active(cut_state);
    let planned_units: Vec<String> = cut_state["components"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["unit"].as_str().unwrap().to_string())
        .collect();
    let systemd_active = planned_units
        .iter()
        .filter(|u| before.active_units.contains(u))
        .count();
    let cut_tasks: Vec<String> = cut_state["tasks"]
        .as_object()
        .map(|t| {
            t.iter()
                .map(|(n, r)| format!("{n} {}", r["outcome"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = cut_state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    eprintln!(
        "E2E-FIGURE powercut at {:.0}s after QEMU started (guest uptime {:.0}s; `omlboot run` {}s in)",
        host_elapsed.as_secs_f64(),
        before.uptime_s,
        before
            .now_unix
            .saturating_sub(cut_state["started_unix"].as_u64().unwrap_or(0))
    );
    eprintln!(
        "E2E-FIGURE powercut state.json at the cut: {}; images step {}; components active {active}/{planned} (systemd: {systemd_active}/{planned}); tasks recorded: {}",
        summary(cut_state),
        if names.contains(&"images") { "done" } else { "not done" },
        if cut_tasks.is_empty() { "none".to_string() } else { cut_tasks.join(", ") }
    );

    // ---- second boot: the same disks ----
    let t1 = Instant::now();
    g.boot_again().expect("boot again");
    g.wait_agent(Duration::from_secs(900))
        .expect("agent on the second boot");
    let btime: u64 = g
        .sh("awk '/^btime/ {print $2}' /proc/stat")
        .trim()
        .parse()
        .unwrap();
    // omlboot-firstboot.service is ordered before cloud-final: cloud-init is done once it is.
    let ci = g.expect_cloud_init(SECOND_BOOT);
    // What ran omlboot this boot: the first-boot unit, to the end.
    let unit = g.unit("omlboot-firstboot.service").unwrap();
    let journal = g.sh("journalctl --no-pager -b -u omlboot-firstboot.service -o cat");
    assert_eq!(
        (
            unit.active_state.as_str(),
            unit.result.as_str(),
            unit.raw.get("ExecMainStatus").map(String::as_str)
        ),
        ("active", "success", Some("0")),
        "omlboot-firstboot.service on the second boot: {unit:?}\n{journal}"
    );
    assert!(
        journal.contains("omlboot: Done in"),
        "the first-boot unit's `omlboot run` finished done this boot:\n{journal}"
    );
    let scripts_user_skipped = g
        .sh("grep -c 'config-scripts_user already ran' /var/log/cloud-init.log || true")
        .trim()
        .to_string();
    eprintln!(
        "E2E-FIGURE powercut second boot: cloud-init's scripts_user (runcmd) skipped as already run: {} line(s) in cloud-init.log",
        scripts_user_skipped
    );

    // Done, on this boot: the run-once marker (state.json done for this instance) written only now.
    let (code, st) = status_json(g);
    assert_eq!((code, st["status"].as_str()), (0, Some("done")), "{st:#}");
    let state = state_json(g);
    assert_eq!(state["instance_id"].as_str(), Some(instance.as_str()));
    let started = state["started_unix"].as_u64().unwrap();
    let finished = state["finished_unix"].as_u64().expect("finished_unix");
    assert!(
        started >= btime && finished >= started,
        "the finished run is this boot's: started {started}, finished {finished}, boot {btime}"
    );
    assert!(
        started > cut_state["started_unix"].as_u64().unwrap(),
        "not the interrupted run's record"
    );
    // State says what the interrupted run did (what it had written durably before the cut).
    let interrupted = &state["interrupted"];
    assert_eq!(
        interrupted["started_unix"], cut_state["started_unix"],
        "{interrupted:#}"
    );
    assert!(
        interrupted["steps"].as_u64().unwrap_or(0) >= 1,
        "{interrupted:#}"
    );
    eprintln!("E2E-FIGURE powercut second boot: state.json interrupted = {interrupted}");
    let again = g.exec("omlboot run").unwrap();
    assert!(
        again.ok() && again.stderr.contains("already provisioned"),
        "`omlboot run` now finds the instance provisioned: {}\n{}",
        again.stdout,
        again.stderr
    );
    eprintln!(
        "E2E-FIGURE powercut second boot: cloud-init done {:.0}s after QEMU started again; {:.0}s from cloud-init's start to omlboot done (guest clock); the resumed run took {}s",
        ci.seconds,
        first_boot_seconds(g),
        finished - started
    );

    // Every component active and enabled, files as `render` makes them.
    let units = component_units(g);
    assert_eq!(units.len(), planned, "{units:?}");
    assert_units_active(g, &units);
    let diff = g.exec("rm -rf /tmp/r && omlboot render --out /tmp/r >/dev/null 2>&1 && for f in /tmp/r/etc/default/* /tmp/r/etc/systemd/system/*; do h=${f#/tmp/r}; cmp -s \"$f\" \"$h\" || echo \"DIFF $h\"; [ \"$(stat -c %a \"$f\")\" = \"$(stat -c %a \"$h\")\" ] || echo \"MODE $h\"; done").unwrap();
    assert!(
        diff.ok() && diff.stdout.trim().is_empty(),
        "host differs from render: {}{}",
        diff.stdout,
        diff.stderr
    );
    let temps = temp_files(g);
    assert!(temps.is_empty(), "temp files left: {temps:?}");
    assert!(
        g.exec("flock -n /run/omlboot.lock true").unwrap().ok(),
        "the lock is free"
    );
    // The secrets as the first boot wrote them, and PostgreSQL (initialised on the first boot) still
    // accepting django.env's password.
    let secrets = g.sh("sha256sum /var/lib/omlboot/secrets.yaml");
    assert_eq!(
        &secrets[..64],
        before.secrets_sha256,
        "secrets.yaml changed since the first boot wrote it"
    );
    assert_eq!(sql(g, "SELECT 1"), "1", "django.env's password logs in");
    // Every bootstrap task succeeded (this boot, or the first when not needed again); the run-once
    // admin reset exactly once; every probe passed.
    let tasks = assert_bootstrapped_once(g, &state);
    // What a user sees: the login redirect on the host's address.
    let plan: Value =
        serde_json::from_str(&g.sh("omlboot plan --format json 2>/dev/null")).expect("plan JSON");
    let address = plan["host"]["private_ip"].as_str().unwrap_or_default();
    assert_eq!(https_status(g, address), "302", "https://{address}/");
    eprintln!(
        "E2E-FIGURE powercut second boot bootstrap tasks: {}",
        tasks.join(", ")
    );
    eprintln!(
        "E2E-FIGURE powercut second boot took {:.0}s to the end of the checks; scenario total {:.0}s",
        t1.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
