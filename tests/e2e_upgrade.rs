//! `omlboot upgrade` / `rollback` on a real boot (issue 11): ONE aio guest, provisioned once by the
//! project's cloud-config/aio.yaml, then four parts, each starting from a healthy converged host:
//!
//! 1. kamailio to `:e2e-2` (healthy) and omlapp to `:e2e-broken` (daphne binds no port: its probe never
//!    passes) in one `omlboot upgrade`: exit 3, kamailio upgraded, omlapp rolled back with a reason, the
//!    rollback detected within the failing probe's deadline + 10 s, no other unit restarted, the
//!    database dump restored (the migrations' rows of the broken image gone).
//! 2. `omlboot rollback kamailio` with the guest's registry stopped: back on `:e2e`, healthy, exit 0.
//!    Then the config set back to the shipped images (`omlboot apply`): exit 0.
//! 3. asterisk carrying a call (the stand-in's /tmp/e2e-calls): its upgrade waits while websockets'
//!    proceeds, `status` says so, the restart comes after the call ends; with a short drain timeout and a
//!    closed maintenance window it waits for the window (an upgrade with the window open completes it);
//!    `--force` restarts at once and says so.
//! 4. `kill -9` of omlboot right after each step of the upgrade journal (tests/e2e/guest-killat-upgrade.sh),
//!    then the same `omlboot upgrade` again: omlapp's three units on exactly the old or the new image,
//!    healthy, one container per component; a table of E2E-FIGURE lines.
//!
//! VM test: `tests/e2e/run.sh upgrade` (`#[ignore]` for plain `cargo test`; not in CI's default set).

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::scenario::{
    assert_units_active, component_units, repo_file, sql, state_json, status_json, test_overrides,
};
use harness::{Guest, GuestSpec, Lab, UserData};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Boot, cloud-init and the first `omlboot run` of every component under TCG (1500-2400 s seen with load).
const PROVISION: Duration = Duration::from_secs(3000);
/// One `omlboot upgrade`/`apply`/`rollback` (pulls, dump, tasks, gates with probe deadlines, rollback).
const RUN: Duration = Duration::from_secs(1800);
/// How long the stability window is here (test override): every gated component spends it.
const STABILITY_WINDOW_S: u64 = 15;
/// The registry the stand-ins come from (tests/e2e/standins/image-overrides.yaml).
const REGISTRY: &str = "localhost:5000/omnileads";
/// Seconds the call of part 3 lasts once the upgrade waits for it (and websockets' part is done).
const CALL_HOLD_S: u64 = 40;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn reference(image: &str, tag: &str) -> String {
    format!("{REGISTRY}/{image}:{tag}")
}

/// `--set k=v ...`
fn sets(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("--set {k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A component of units/catalog.yaml, as far as this test needs it.
#[derive(Debug, Clone)]
struct Comp {
    name: String,
    unit: String,
    container: String,
    /// The config key of its image (`omnileads_img`).
    image_key: String,
    /// Its probe's deadline (catalog `deadline_s`, default 120), if it has a probe.
    deadline_s: Option<u64>,
}

fn catalog() -> Vec<Comp> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&repo_file("units/catalog.yaml")).expect("catalog parses");
    doc["components"]
        .as_sequence()
        .expect("catalog components")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            let probe = c.get("probe").filter(|p| !p.is_null());
            Comp {
                name: s("name"),
                unit: s("unit"),
                container: s("container"),
                image_key: s("image"),
                // units/catalog.yaml's header: "deadline_s (default 120) from the unit being active".
                deadline_s: probe.map(|p| p["deadline_s"].as_u64().unwrap_or(120)),
            }
        })
        .collect()
}

fn comp<'a>(cat: &'a [Comp], name: &str) -> &'a Comp {
    cat.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no component {name} in units/catalog.yaml"))
}

/// Image ids without the `sha256:` prefix (podman prints them bare, omlboot's records may not).
fn norm(id: &str) -> String {
    id.trim().trim_start_matches("sha256:").to_string()
}

/// The tag of a reference (`e2e-2`).
fn tag(reference: &str) -> &str {
    reference.rsplit(':').next().unwrap_or_default()
}

fn short(id: &str) -> String {
    norm(id).chars().take(12).collect()
}

/// The id a local reference names now.
fn image_id(g: &Guest, reference: &str) -> String {
    norm(&g.sh(&format!(
        "podman image inspect --format '{{{{.Id}}}}' {reference}"
    )))
}

/// The image id a container runs, if it exists.
fn container_image(g: &Guest, container: &str) -> Option<String> {
    let o = g
        .exec(&format!(
            "podman inspect --format '{{{{.Image}}}}' {container}"
        ))
        .unwrap();
    o.ok().then(|| norm(&o.stdout))
}

/// unit → (NRestarts, ActiveEnterTimestamp), one `systemctl show` for all.
fn snapshot(g: &Guest, units: &[String]) -> BTreeMap<String, (u32, String)> {
    let out = g.sh(&format!(
        "systemctl show --no-pager -p Id,NRestarts,ActiveEnterTimestamp {}",
        units.join(" ")
    ));
    let mut snap = BTreeMap::new();
    for block in out.split("\n\n") {
        let kv: BTreeMap<&str, &str> = block.lines().filter_map(|l| l.split_once('=')).collect();
        if let Some(id) = kv.get("Id") {
            snap.insert(
                id.to_string(),
                (
                    kv.get("NRestarts")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    kv.get("ActiveEnterTimestamp").unwrap_or(&"").to_string(),
                ),
            );
        }
    }
    assert_eq!(snap.len(), units.len(), "systemctl show: {out}");
    snap
}

/// When a unit last became active, unix seconds on the guest clock (from its monotonic timestamp).
fn active_since_unix(g: &Guest, unit: &str) -> u64 {
    // From the boot time the kernel fixed (/proc/stat btime), not now - uptime: that moved by a second
    // between two reads and failed part 3's "not restarted" check on an unrestarted unit.
    g.sh(&format!(
        "b=$(awk '/^btime/ {{print $2}}' /proc/stat); \
         m=$(systemctl show -p ActiveEnterTimestampMonotonic --value {unit}); \
         echo $(( b + m / 1000000 ))"
    ))
    .trim()
    .parse()
    .expect("a number")
}

fn guest_now(g: &Guest) -> u64 {
    g.sh("date +%s").trim().parse().unwrap()
}

/// When a stand-in container first logged its `ready ... listening=[...]` line since `since` (unix s),
/// from journald (`--log-driver=journald`).
fn ready_at(g: &Guest, container: &str, since: u64) -> Option<f64> {
    let o = g
        .exec(&format!(
            "journalctl --no-pager -o short-unix CONTAINER_NAME={container} --since @{since} | grep -m1 ' ready mode='"
        ))
        .unwrap();
    o.stdout.split_whitespace().next()?.parse().ok()
}

/// Units of `units` that systemd does not call active (one exec).
fn inactive(g: &Guest, units: &[String]) -> Vec<String> {
    let out = g
        .exec(&format!("systemctl is-active {}", units.join(" ")))
        .unwrap();
    units
        .iter()
        .zip(out.stdout.lines())
        .filter(|(_, s)| s.trim() != "active")
        .map(|(u, s)| format!("{u}={s}"))
        .collect()
}

/// Components whose last probe (state.json) did not pass.
fn failed_probes(state: &Value) -> Vec<String> {
    state["components"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, c)| c.get("probe").is_some_and(|p| p["passed"] != true))
        .map(|(n, c)| format!("{n}: {}", c["probe"]["detail"]))
        .collect()
}

/// /var/lib/omlboot/upgrade.json.
fn journal(g: &Guest) -> Value {
    serde_json::from_str(
        &g.read_file("/var/lib/omlboot/upgrade.json")
            .unwrap()
            .expect("upgrade.json"),
    )
    .expect("upgrade.json parses")
}

/// The rows the stand-in's migrations wrote (one per run, with the image reference that ran it).
fn migrations(g: &Guest) -> String {
    sql(
        g,
        "SELECT count(*) || ' rows: ' || coalesce(string_agg(image_ref, ',' ORDER BY image_ref), '') FROM django_migrations",
    )
}

/// The calls a voice stand-in reports (its /tmp/e2e-calls), set and read back with the catalog's command.
fn set_calls(g: &Guest, container: &str, n: u32) {
    g.sh(&format!(
        "podman exec {container} sh -c 'echo {n} > /tmp/e2e-calls'"
    ));
    let said = g.sh(&format!(
        "podman exec {container} asterisk -rx 'core show channels count'"
    ));
    assert!(
        said.contains(&format!("{n} active call")),
        "the stand-in's call count: {said}"
    );
}

/// Start `cmd` in the background in the guest (its own session): /root/NAME.{log,pid,rc}.
fn start_bg(g: &Guest, name: &str, cmd: &str) {
    assert!(!cmd.contains('\''), "{cmd}");
    g.sh(&format!(
        "rm -f /root/{name}.rc /root/{name}.pid; \
         setsid -f bash -c '{cmd} >/root/{name}.log 2>&1 </dev/null & echo $! >/root/{name}.pid; wait $!; echo $? >/root/{name}.rc' \
         >/dev/null 2>&1 </dev/null; \
         for i in $(seq 100); do [ -s /root/{name}.pid ] && exit 0; sleep 0.1; done; exit 1"
    ));
}

/// Exit code of a background command, once it ended.
fn bg_rc(g: &Guest, name: &str) -> Option<i32> {
    g.read_file(&format!("/root/{name}.rc"))
        .unwrap()
        .and_then(|s| s.trim().parse().ok())
}

fn bg_log(g: &Guest, name: &str) -> String {
    g.read_file(&format!("/root/{name}.log"))
        .unwrap()
        .unwrap_or_default()
}

fn wait_bg(g: &Guest, name: &str, timeout: Duration) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(rc) = bg_rc(g, name) {
            return rc;
        }
        assert!(
            t.elapsed() < timeout,
            "{name} still running after {timeout:?}\n{}",
            bg_log(g, name)
        );
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Polls `omlboot status --format json` until `until` holds; fails if the background run `bg` ended first.
fn poll_status(g: &Guest, bg: &str, what: &str, until: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let (_, st) = status_json(g);
        if until(&st) {
            return st;
        }
        if let Some(rc) = bg_rc(g, bg) {
            panic!(
                "{bg} ended (exit {rc}) before {what}\n{st:#}\n--- log ---\n{}",
                bg_log(g, bg)
            );
        }
        assert!(
            t.elapsed() < RUN,
            "{what}: not after {RUN:?}\n{st:#}\n{}",
            bg_log(g, bg)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Runs omlboot in the foreground; exit code, stdout, stderr, seconds.
fn omlboot(g: &Guest, args: &str) -> (i32, String, String, f64) {
    let t = Instant::now();
    let o = g
        .exec_timeout(&format!("omlboot {args}"), RUN)
        .unwrap_or_else(|e| panic!("omlboot {args}: {e:#}"));
    (o.code, o.stdout, o.stderr, t.elapsed().as_secs_f64())
}

fn outcome(st: &Value, component: &str) -> String {
    st["upgrades"][component]["outcome"]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

fn reason(st: &Value, component: &str) -> String {
    st["upgrades"][component]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `key=value` lines of guest-killat-upgrade.sh.
fn parse_report(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh upgrade"]
fn upgrade_aio_rollback_drain_window_force_and_kill_at_every_journal_step() {
    let t0 = Instant::now();
    let cat = catalog();
    let ud = UserData::with_overrides(
        &repo_file("cloud-config/aio.yaml"),
        &[&test_overrides(&format!(
            "stability_window_s: {STABILITY_WINDOW_S}"
        ))],
    );
    let lab = Lab::boot_one(GuestSpec::new("upgrade-aio", ud).mem_mb(3072)).expect("boot");
    let g = &lab.guests[0];
    let ci = g.expect_cloud_init(PROVISION);
    let (code, st) = status_json(g);
    assert_eq!((code, st["status"].as_str()), (0, Some("done")), "{st:#}");
    eprintln!(
        "E2E-FIGURE upgrade scenario: guest provisioned, cloud-init done after {:.0}s",
        ci.seconds
    );
    let units = component_units(g);
    assert!(units.len() >= 20, "aio runs every component: {units:?}");
    assert_units_active(g, &units);
    let killat = std::fs::read(harness::artifacts::e2e_dir().join("guest-killat-upgrade.sh"))
        .expect("guest-killat-upgrade.sh");
    g.write_file("/root/killat-upgrade.sh", &killat).unwrap();

    let omlapp: Vec<Comp> = cat
        .iter()
        .filter(|c| c.image_key == "omnileads_img")
        .cloned()
        .collect();
    assert_eq!(
        omlapp.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["omnileads", "daphne", "omlcron"],
        "the omlapp image's components, in gate order"
    );
    let kamailio = comp(&cat, "kamailio").clone();
    let asterisk = comp(&cat, "asterisk").clone();
    let websockets = comp(&cat, "websockets").clone();
    let (k1, k2) = (reference("kamailio", "e2e"), reference("kamailio", "e2e-2"));
    let (a1, a2) = (reference("asterisk", "e2e"), reference("asterisk", "e2e-2"));
    let w2 = reference("websockets", "e2e-2");
    let (app1, app2, app_broken) = (
        reference("omlapp", "e2e"),
        reference("omlapp", "e2e-2"),
        reference("omlapp", "e2e-broken"),
    );
    let k1_id = image_id(g, &k1);
    let app1_id = image_id(g, &app1);
    let a1_id = image_id(g, &a1);
    assert_eq!(
        container_image(g, &kamailio.container).as_deref(),
        Some(k1_id.as_str())
    );
    for c in &omlapp {
        assert_eq!(
            container_image(g, &c.container).as_deref(),
            Some(app1_id.as_str()),
            "{}",
            c.name
        );
    }

    // ---------------------------------------------------------------- 1. one healthy, one broken
    let t = Instant::now();
    let before = snapshot(g, &units);
    let rows_before = migrations(g);
    let state_before = state_json(g);
    let migrations_runs_before = state_before["tasks"]["django_migrations"]["successes"]
        .as_u64()
        .unwrap_or(0);
    let p1_sets = sets(&[("kamailio_img", &k2), ("omnileads_img", &app_broken)]);
    let (code, out, err, secs) = omlboot(g, &format!("upgrade {p1_sets}"));
    eprintln!("E2E-FIGURE part 1: upgrade of kamailio (healthy) and omlapp (broken): exit {code} after {secs:.0}s");
    assert_eq!(
        code, 3,
        "one rolled back, healthy on the old image: exit 3\n{out}\n{err}"
    );
    let (scode, st) = status_json(g);
    assert_eq!(
        (scode, st["status"].as_str()),
        (3, Some("degraded")),
        "{st:#}"
    );
    assert_eq!(outcome(&st, "kamailio"), "upgraded", "{st:#}");
    for c in &omlapp {
        assert_eq!(outcome(&st, &c.name), "rolled back", "{}: {st:#}", c.name);
        assert!(
            reason(&st, &c.name).contains("probe failed"),
            "{}: the reason names the failed probe: {st:#}",
            c.name
        );
    }
    let table = g.exec("omlboot status").unwrap().stdout;
    assert!(
        table.lines().any(|l| l.contains("omnileads")
            && l.contains("rolled back")
            && l.contains("probe failed")),
        "status explains the rollback:\n{table}"
    );
    // What runs: kamailio the new image, omlapp's three the old one; the previous kamailio image kept.
    let k2_id = norm(st["upgrades"]["kamailio"]["image_id"].as_str().unwrap());
    assert_ne!(k2_id, k1_id);
    assert_eq!(k2_id, image_id(g, &k2));
    assert_eq!(
        container_image(g, &kamailio.container).as_deref(),
        Some(k2_id.as_str())
    );
    for c in &omlapp {
        assert_eq!(
            container_image(g, &c.container).as_deref(),
            Some(app1_id.as_str()),
            "{} back on the old image",
            c.name
        );
        assert_eq!(
            norm(st["upgrades"][&c.name]["image_id"].as_str().unwrap()),
            app1_id
        );
    }
    let keep = st["upgrades"]["kamailio"]["previous_tag"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        keep.starts_with("localhost/omlboot-previous/kamailio:")
            && g.exec(&format!("podman image exists {keep}")).unwrap().ok(),
        "the previous kamailio image is kept under {keep:?}"
    );
    assert_units_active(g, &units);
    let state = state_json(g);
    assert!(
        failed_probes(&state).is_empty(),
        "{:?}",
        failed_probes(&state)
    );
    // Rollback detection: from the gate's start (journal `probing`) to `rolling_back`, less the stability
    // window each member gated before the failing one spent (the failing probe starts after them).
    let j = journal(g);
    let entries: Vec<&Value> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reference"] == app_broken.as_str())
        .collect();
    let at = |step: &str| -> u64 {
        entries
            .iter()
            .find(|e| e["step"] == step)
            .and_then(|e| e["at_unix"].as_u64())
            .unwrap_or_else(|| panic!("no {step} entry for {app_broken}: {j:#}"))
    };
    let steps: Vec<&str> = entries.iter().filter_map(|e| e["step"].as_str()).collect();
    assert_eq!(
        steps,
        [
            "pulled",
            "previous_tagged",
            "dump_taken",
            "restarting",
            "probing",
            "rolling_back",
            "rolled_back"
        ],
        "{j:#}"
    );
    let (t_restart, t_probing, t_rb, t_done) = (
        at("restarting"),
        at("probing"),
        at("rolling_back"),
        at("rolled_back"),
    );
    let detail = entries
        .iter()
        .find(|e| e["step"] == "rolling_back")
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_default()
        .to_string();
    let failing = detail
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let pos = omlapp
        .iter()
        .position(|c| c.name == failing)
        .unwrap_or_else(|| panic!("the rollback names an omlapp component: {detail}"));
    let deadline = omlapp[pos]
        .deadline_s
        .unwrap_or_else(|| panic!("{failing} has no probe in units/catalog.yaml: {detail}"));
    // The gate takes its members one after another: each probe until it passes (for a member before the
    // failing one: until its container logged the stand-in's `ready` line, when it bound its ports), then
    // the stability window. The failing probe starts after them; its deadline counts from there.
    let mut probe_start = t_probing as f64;
    let mut before_it = vec![];
    for c in &omlapp[..pos] {
        let ready = if c.deadline_s.is_some() {
            ready_at(g, &c.container, t_restart)
        } else {
            None
        };
        if let Some(r) = ready {
            probe_start = probe_start.max(r);
        }
        before_it.push(format!(
            "{} (ready {}, then {STABILITY_WINDOW_S}s of stability window)",
            c.name,
            ready.map_or("not logged: counted from `probing`".into(), |r| format!(
                "{:.0}s after `probing`",
                r - t_probing as f64
            ))
        ));
        probe_start += STABILITY_WINDOW_S as f64;
    }
    let detection = t_rb as f64 - probe_start;
    eprintln!(
        "E2E-FIGURE rollback detection: {detection:.0}s from the start of {failing}'s probe to `rolling_back` \
         (probe deadline {deadline}s in units/catalog.yaml; bound deadline + 10 = {} s); gated before it: {}; \
         `probing` to `rolling_back` {}s; restart of the new image to `rolling_back` {}s; rollback itself \
         (tag, dump restored, restart, probes) {}s; reason: {detail}",
        deadline + 10,
        if before_it.is_empty() { "-".to_string() } else { before_it.join(", ") },
        t_rb.saturating_sub(t_probing),
        t_rb.saturating_sub(t_restart),
        t_done.saturating_sub(t_rb),
    );
    // Journal times are whole seconds: one second of slack on top of the bound.
    assert!(
        detection <= (deadline + 10) as f64 + 1.0,
        "rollback detected {detection:.0}s after the failing probe started: more than its deadline {deadline}s + 10 s"
    );
    assert!(detail.contains("probe failed"), "{detail}");
    // Nothing else restarted.
    let changed: Vec<String> = std::iter::once(kamailio.unit.clone())
        .chain(omlapp.iter().map(|c| c.unit.clone()))
        .collect();
    let after = snapshot(g, &units);
    for u in &changed {
        assert_ne!(after[u].1, before[u].1, "{u} was restarted by the upgrade");
    }
    let extra: Vec<String> = units
        .iter()
        .filter(|u| !changed.contains(u) && after[*u] != before[*u])
        .map(|u| format!("{u}: {:?} -> {:?}", before[u], after[u]))
        .collect();
    eprintln!(
        "E2E-FIGURE extra restarts of untouched units: {} (of {} untouched units) {extra:?}",
        extra.len(),
        units.len() - changed.len()
    );
    assert!(
        extra.is_empty(),
        "units restarted that the upgrade does not touch: {extra:?}"
    );
    // The migrations ran on the broken image (after the dump); the rollback restored the dump.
    let runs_after = state["tasks"]["django_migrations"]["successes"]
        .as_u64()
        .unwrap_or(0);
    let rows_after = migrations(g);
    eprintln!(
        "E2E-FIGURE part 1 database: migrations runs {migrations_runs_before} -> {runs_after}; django_migrations before `{rows_before}`, after the rollback `{rows_after}`; dump {}",
        st["upgrades"]["omnileads"]["dump"]
    );
    assert!(
        runs_after > migrations_runs_before,
        "the migrations ran on the new image"
    );
    assert_eq!(
        rows_after, rows_before,
        "the dump taken before the upgrade was restored"
    );
    let dump = st["upgrades"]["omnileads"]["dump"]
        .as_str()
        .expect("a dump recorded");
    assert!(g.file_stat(dump).unwrap().is_some(), "{dump}");
    eprintln!("E2E-FIGURE part 1 took {:.0}s", t.elapsed().as_secs_f64());

    // ---------------------------------------------------------------- 2. rollback, registry stopped
    let t = Instant::now();
    g.sh("systemctl stop docker-registry.service");
    assert!(
        !g.exec("curl -fsS -m 5 http://127.0.0.1:5000/v2/")
            .unwrap()
            .ok(),
        "the registry is stopped"
    );
    let before = snapshot(g, &units);
    // The same config as the upgrade (its --set): the reference the unit runs is kamailio's :e2e-2.
    let (code, out, err, secs) = omlboot(g, &format!("rollback kamailio {p1_sets}"));
    eprintln!(
        "E2E-FIGURE part 2: rollback of kamailio, registry stopped: exit {code} after {secs:.0}s"
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, st) = status_json(g);
    assert_eq!(outcome(&st, "kamailio"), "rolled back", "{st:#}");
    assert_eq!(
        container_image(g, &kamailio.container).as_deref(),
        Some(k1_id.as_str()),
        "kamailio back on :e2e"
    );
    assert_eq!(
        norm(st["upgrades"]["kamailio"]["image_id"].as_str().unwrap()),
        k1_id
    );
    assert_eq!(
        st["components"]["kamailio"]["probe"]["passed"], true,
        "{st:#}"
    );
    let after = snapshot(g, &units);
    assert_ne!(
        after[&kamailio.unit].1, before[&kamailio.unit].1,
        "kamailio restarted"
    );
    let extra: Vec<&String> = units
        .iter()
        .filter(|u| **u != kamailio.unit && after[*u] != before[*u])
        .collect();
    assert!(
        extra.is_empty(),
        "the rollback restarted other units: {extra:?}"
    );
    assert_units_active(g, &units);
    g.sh("systemctl start docker-registry.service");
    g.sh("for i in $(seq 60); do curl -fsS -m 5 http://127.0.0.1:5000/v2/ >/dev/null && exit 0; sleep 1; done; exit 1");
    // The config back to the shipped images (kamailio and omlapp :e2e, which they run): converged, exit 0.
    let (code, out, err, secs) = omlboot(g, "apply");
    eprintln!(
        "E2E-FIGURE part 2: apply with the shipped images again: exit {code} after {secs:.0}s"
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_units_active(g, &units);
    assert_eq!(
        container_image(g, &kamailio.container).as_deref(),
        Some(k1_id.as_str())
    );
    for c in &omlapp {
        assert_eq!(
            container_image(g, &c.container).as_deref(),
            Some(app1_id.as_str()),
            "{}",
            c.name
        );
    }
    eprintln!("E2E-FIGURE part 2 took {:.0}s", t.elapsed().as_secs_f64());

    // ---------------------------------------------------------------- 3. calls, window, --force
    let t = Instant::now();
    let today = (g.sh("date -u +%u").trim().parse::<usize>().unwrap() + 6) % 7; // 0 = mon
    let closed = DAYS[(today + 3) % 7];
    let open = format!("{},{}", DAYS[today], DAYS[(today + 1) % 7]);
    // 3a. a call: asterisk's upgrade waits, websockets' proceeds; the restart after the call ends.
    set_calls(g, &asterisk.container, 1);
    let ast_since = active_since_unix(g, &asterisk.unit);
    let drain_sets = sets(&[
        ("asterisk_img", &a2),
        ("websockets_img", &w2),
        ("maintenance_weekdays", closed),
        ("drain_timeout_s", "900"),
    ]);
    start_bg(g, "drain", &format!("omlboot upgrade {drain_sets}"));
    let st = poll_status(
        g,
        "drain",
        "asterisk waits for its call and websockets is upgraded",
        |st| {
            outcome(st, "asterisk") == "waiting for drain"
                && outcome(st, "websockets") == "upgraded"
        },
    );
    let waiting_seen = guest_now(g);
    assert_eq!(st["components"]["asterisk"]["state"], "waiting", "{st:#}");
    assert!(reason(&st, "asterisk").contains("1 call"), "{st:#}");
    let table = g.exec("omlboot status").unwrap().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.contains("asterisk") && l.contains("waiting for drain")),
        "status says asterisk waits for its call:\n{table}"
    );
    assert_eq!(
        container_image(g, &asterisk.container).as_deref(),
        Some(a1_id.as_str())
    );
    assert_eq!(
        active_since_unix(g, &asterisk.unit),
        ast_since,
        "asterisk not restarted while it carries a call"
    );
    // The call ends CALL_HOLD_S later, from a background shell in the guest.
    g.sh(&format!(
        "setsid -f sh -c 'sleep {CALL_HOLD_S}; date +%s >/root/call-ending; \
         podman exec {c} sh -c \"echo 0 > /tmp/e2e-calls\"; date +%s >/root/call-ended' >/dev/null 2>&1 </dev/null",
        c = asterisk.container
    ));
    // Still waiting while the call is up (read the call's end marker before and after status).
    let mut checks = 0;
    while checks < 3 {
        std::thread::sleep(Duration::from_secs(8));
        let up = g.read_file("/root/call-ending").unwrap().is_none();
        let (_, st) = status_json(g);
        if !up || g.read_file("/root/call-ending").unwrap().is_some() {
            break;
        }
        assert_eq!(outcome(&st, "asterisk"), "waiting for drain", "{st:#}");
        assert!(
            bg_rc(g, "drain").is_none(),
            "the upgrade ended while the call was up:\n{}",
            bg_log(g, "drain")
        );
        checks += 1;
    }
    assert!(
        checks >= 1,
        "status was read at least once while the call was up"
    );
    let code = wait_bg(g, "drain", RUN);
    let log = bg_log(g, "drain");
    assert_eq!(code, 0, "{log}");
    let ending: u64 = g
        .read_file("/root/call-ending")
        .unwrap()
        .expect("the call ended")
        .trim()
        .parse()
        .unwrap();
    let (_, st) = status_json(g);
    assert_eq!(outcome(&st, "asterisk"), "upgraded", "{st:#}");
    assert!(reason(&st, "asterisk").contains("no call"), "{st:#}");
    let a2_id = image_id(g, &a2);
    assert_ne!(a2_id, a1_id);
    assert_eq!(
        container_image(g, &asterisk.container).as_deref(),
        Some(a2_id.as_str())
    );
    let ast_restart = active_since_unix(g, &asterisk.unit);
    let ws_restart = active_since_unix(g, &websockets.unit);
    eprintln!(
        "E2E-FIGURE drain: asterisk's upgrade waited for its call: seen waiting at {waiting_seen}, websockets upgraded meanwhile (active since {ws_restart}), the call ended at {ending} ({}s later), asterisk restarted at {ast_restart} ({}s after the call ended); {checks} status reads during the call said `waiting for drain`",
        ending.saturating_sub(waiting_seen),
        ast_restart as i64 - ending as i64
    );
    // Both in whole seconds, from different clocks' readings: one second of slack.
    assert!(
        ast_restart + 1 >= ending,
        "asterisk restarted at {ast_restart}, before its call ended at {ending}"
    );
    assert!(
        ws_restart < ending,
        "websockets' part did not wait for asterisk's call"
    );
    assert_units_active(g, &units);

    // 3b. a short drain timeout and a closed window: it waits for the window; with the window open it completes.
    set_calls(g, &asterisk.container, 1);
    let ast_since = active_since_unix(g, &asterisk.unit);
    let closed_sets = sets(&[
        ("websockets_img", &w2),
        ("maintenance_weekdays", closed),
        ("drain_timeout_s", "20"),
    ]);
    start_bg(g, "window", &format!("omlboot upgrade {closed_sets}"));
    let st = poll_status(
        g,
        "window",
        "asterisk waits for the maintenance window",
        |st| outcome(st, "asterisk") == "waiting for window",
    );
    let why = reason(&st, "asterisk");
    assert!(
        why.contains("maintenance window") && why.contains("1 call"),
        "{why}"
    );
    let table = g.exec("omlboot status").unwrap().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.contains("asterisk") && l.contains("waiting for window")),
        "status says asterisk waits for the window:\n{table}"
    );
    assert_eq!(
        active_since_unix(g, &asterisk.unit),
        ast_since,
        "not restarted with its call, window closed"
    );
    assert_eq!(
        container_image(g, &asterisk.container).as_deref(),
        Some(a2_id.as_str())
    );
    // The operator stops the waiting run; the next one, with the window open, does the restart.
    g.sh("kill -TERM $(cat /root/window.pid)");
    let code = wait_bg(g, "window", Duration::from_secs(120));
    eprintln!(
        "E2E-FIGURE window: asterisk deferred ({why}); the waiting run stopped (exit {code})"
    );
    let open_sets = sets(&[
        ("websockets_img", &w2),
        ("maintenance_weekdays", &open),
        ("drain_timeout_s", "20"),
    ]);
    let (code, out, err, secs) = omlboot(g, &format!("upgrade {open_sets}"));
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, st) = status_json(g);
    assert_eq!(outcome(&st, "asterisk"), "upgraded", "{st:#}");
    let why = reason(&st, "asterisk");
    assert!(
        why.contains("maintenance window") && why.contains("is open"),
        "{why}"
    );
    assert_eq!(
        container_image(g, &asterisk.container).as_deref(),
        Some(a1_id.as_str())
    );
    eprintln!("E2E-FIGURE window: with the window open ({open}) the upgrade completed in {secs:.0}s, call up: {why}");

    // 3c. --force with two calls up: at once, and it says so.
    set_calls(g, &asterisk.container, 2);
    let force_sets = sets(&[
        ("asterisk_img", &a2),
        ("websockets_img", &w2),
        ("maintenance_weekdays", closed),
        ("drain_timeout_s", "600"),
    ]);
    let (code, out, err, secs) = omlboot(g, &format!("upgrade --force {force_sets}"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("--force"), "{err}");
    let (_, st) = status_json(g);
    assert_eq!(outcome(&st, "asterisk"), "upgraded", "{st:#}");
    let why = reason(&st, "asterisk");
    assert!(
        why.contains("--force: restarted at once, carrying 2 calls"),
        "{why}"
    );
    assert_eq!(
        container_image(g, &asterisk.container).as_deref(),
        Some(a2_id.as_str())
    );
    eprintln!("E2E-FIGURE --force: asterisk upgraded with 2 calls up in {secs:.0}s (a wait would have lasted 600 s): {why}");
    assert!(
        secs < 600.0,
        "--force waited for the drain timeout: {secs:.0}s"
    );
    assert_units_active(g, &units);
    eprintln!("E2E-FIGURE part 3 took {:.0}s", t.elapsed().as_secs_f64());

    // ---------------------------------------------------------------- 4. kill -9 at every journal step
    let t = Instant::now();
    let base = sets(&[("asterisk_img", &a2), ("websockets_img", &w2)]);
    let cases: [(&str, bool); 8] = [
        ("pulled", false),
        ("previous_tagged", false),
        ("dump_taken", false),
        ("restarting", false),
        ("probing", false),
        ("upgraded", false),
        ("rolling_back", true),
        ("rolled_back", true),
    ];
    let mut cur = app1.clone();
    let mut table: Vec<String> = vec![];
    let header = [
        "| # | killed after journal step | upgrade | after | journal left | omlapp units right after the kill (uwsgi, daphne, cron) | orphans | rerun | omlapp after the rerun | units | probes | containers per component | journal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ];
    let print_table = |rows: &[String]| {
        eprintln!("E2E-FIGURE kill -9 upgrade table:");
        for l in header
            .iter()
            .map(|s| s.to_string())
            .chain(rows.iter().cloned())
        {
            eprintln!("E2E-FIGURE {l}");
        }
    };
    for (i, (step, broken)) in cases.iter().enumerate() {
        let target = if *broken {
            // After a rollback the broken reference names the old image locally: untagged, it is pulled again.
            let _ = g.exec(&format!("podman untag {app_broken}"));
            app_broken.clone()
        } else if cur == app1 {
            app2.clone()
        } else {
            app1.clone()
        };
        let old_id = container_image(g, &omlapp[0].container).expect("uwsgi runs");
        let rows_before = migrations(g);
        let args = format!("upgrade {base} --set omnileads_img={target}");
        let out = g
            .exec_timeout(
                &format!(
                    "bash /root/killat-upgrade.sh {i} {step} {} {args}",
                    RUN.as_secs()
                ),
                RUN + Duration::from_secs(120),
            )
            .unwrap();
        let report = parse_report(&out.stdout);
        let kill_log = g
            .read_file(&format!("/root/upgrade-kill-{i}.log"))
            .unwrap()
            .unwrap_or_default();
        assert!(
            out.ok()
                && report.get("killed").map(String::as_str) == Some(*step)
                && report["exit"] == "137",
            "kill at {step}: not reached\n{}\n{}\n--- /root/upgrade-kill-{i}.log ---\n{kill_log}",
            out.stdout,
            out.stderr
        );
        let j = journal(g);
        let new_id = norm(
            j["groups"][&target]["new_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{j:#}")),
        );
        let journal_old = norm(j["groups"][&target]["previous_id"].as_str().unwrap());
        let class = |id: Option<&str>| match id {
            None => "none".to_string(),
            Some(x) if x == old_id => "old".to_string(),
            Some(x) if x == new_id => "new".to_string(),
            Some(x) => format!("other {}", short(x)),
        };
        let at_kill: Vec<String> = omlapp
            .iter()
            .map(|c| class(container_image(g, &c.container).as_deref()))
            .collect();
        // The same upgrade again, uninterrupted.
        let (code, rout, rerr, rsecs) = omlboot(g, &args);
        let mut problems: Vec<String> = vec![];
        if report["last_step"] != *step {
            problems.push(format!(
                "the kill landed after `{}`, not `{step}`",
                report["last_step"]
            ));
        }
        if journal_old != old_id {
            problems.push(format!(
                "journal previous_id {} is not what ran {}",
                short(&journal_old),
                short(&old_id)
            ));
        }
        let want_code = if *broken { 3 } else { 0 };
        if code != want_code {
            problems.push(format!(
                "rerun exit {code}, not {want_code}\n{rout}\n{rerr}"
            ));
        }
        let j = journal(g);
        if j["done"] != true {
            problems.push(format!("journal not done: {j:#}"));
        }
        let st = state_json(g);
        let running: Vec<Option<String>> = omlapp
            .iter()
            .map(|c| container_image(g, &c.container))
            .collect();
        let end: Vec<String> = running.iter().map(|id| class(id.as_deref())).collect();
        let want = if *broken { "old" } else { "new" };
        if end.iter().any(|e| e != want) {
            problems.push(format!("omlapp after the rerun: {end:?}, want all {want}"));
        }
        for (c, id) in omlapp.iter().zip(&running) {
            let recorded = norm(
                st["upgrades"][&c.name]["image_id"]
                    .as_str()
                    .unwrap_or_default(),
            );
            if id.as_deref() != Some(recorded.as_str()) {
                problems.push(format!(
                    "{}: runs {:?}, state records {}",
                    c.name,
                    id.as_deref().map(short),
                    short(&recorded)
                ));
            }
        }
        let down = inactive(g, &units);
        if !down.is_empty() {
            problems.push(format!("units not active: {down:?}"));
        }
        let probes = failed_probes(&st);
        if !probes.is_empty() {
            problems.push(format!("probes failed: {probes:?}"));
        }
        // One container per component: each omlapp container name once, and no other running container on
        // the old or the new image (the bootstrap tasks' one-shots, omlboot-task-*, are not components).
        let ps = g.containers().unwrap();
        let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
        let mut on_group = 0;
        for c in &ps {
            let name = c["Names"][0].as_str().unwrap_or_default().to_string();
            let id = norm(c["ImageID"].as_str().unwrap_or_default());
            if name.starts_with("omlboot-task-") {
                continue;
            }
            *per_name.entry(name).or_default() += 1;
            if id == old_id || id == new_id {
                on_group += 1;
            }
        }
        let dup: Vec<String> = per_name
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| format!("{k}x{n}"))
            .collect();
        if !dup.is_empty() || on_group != omlapp.len() {
            problems.push(format!("containers: duplicates {dup:?}, {on_group} running on omlapp's old or new image (want {})", omlapp.len()));
        }
        let rows_after = migrations(g);
        if *broken && rows_after != rows_before {
            problems.push(format!(
                "the dump was not restored: django_migrations `{rows_before}` -> `{rows_after}`"
            ));
        }
        let row = format!(
            "| {i} | `{step}` | omlapp :{} → :{} | {:.1} s | `{}`, {} entries | {} | {} | exit {code} after {rsecs:.0} s | {} ({}) | {} | {} | {} | {} |",
            tag(&cur),
            tag(&target),
            report["after_ms"].parse::<f64>().unwrap_or(0.0) / 1000.0,
            report["last_step"],
            report["entries"],
            at_kill.join(", "),
            if report["orphans"].is_empty() { "-".to_string() } else { report["orphans"].replace('|', "/") },
            end.join(", "),
            short(running[0].as_deref().unwrap_or("-")),
            if down.is_empty() { format!("{n}/{n} active", n = units.len()) } else { format!("{} inactive", down.len()) },
            if probes.is_empty() { "passed" } else { "FAILED" },
            if dup.is_empty() && on_group == omlapp.len() { "one each" } else { "DUPLICATES" },
            if j["done"] == true { "done" } else { "NOT DONE" },
        );
        eprintln!("E2E-FIGURE kill -9 upgrade #{i} {row}");
        table.push(row);
        if !problems.is_empty() {
            print_table(&table);
            panic!(
                "kill -9 at `{step}` (omlapp → {target}):\n{}\n--- killed run's log ---\n{kill_log}",
                problems.join("\n")
            );
        }
        if *broken {
            // The config back to what runs: converged, exit 0, before the next case.
            let (code, out, err, _) =
                omlboot(g, &format!("upgrade {base} --set omnileads_img={cur}"));
            assert_eq!(code, 0, "back to {cur} after the broken case\n{out}\n{err}");
        } else {
            cur = target;
        }
    }
    print_table(&table);
    eprintln!("E2E-FIGURE part 4 took {:.0}s", t.elapsed().as_secs_f64());

    // The end: every component healthy on what the config names.
    let (code, st) = status_json(g);
    assert_eq!((code, st["status"].as_str()), (0, Some("done")), "{st:#}");
    assert_units_active(g, &units);
    eprintln!(
        "E2E-FIGURE upgrade scenario total {:.0}s",
        t0.elapsed().as_secs_f64()
    );
}

/// Fast (no VM): what the scenario reads from units/catalog.yaml is there.
#[test]
fn the_catalog_has_what_the_upgrade_scenario_reads() {
    let cat = catalog();
    let omlapp: Vec<&str> = cat
        .iter()
        .filter(|c| c.image_key == "omnileads_img")
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(omlapp, ["omnileads", "daphne", "omlcron"]);
    // The broken omlapp stand-in answers on uwsgi's port but binds none for daphne: daphne's probe fails.
    assert!(comp(&cat, "daphne").deadline_s.is_some());
    assert!(comp(&cat, "kamailio").deadline_s.is_some());
    assert_eq!(comp(&cat, "asterisk").container, "oml-asterisk-server");
    assert_eq!(comp(&cat, "websockets").unit, "websockets.service");
}
