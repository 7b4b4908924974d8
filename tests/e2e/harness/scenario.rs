//! What the omlboot scenarios (tests/e2e_apply.rs, tests/e2e_bake.rs) share: the test overrides that go on
//! top of the project's cloud-config files, and reads of omlboot's and cloud-init's state in a guest.
use super::artifacts::repo_root;
use super::Guest;
use serde_json::Value;

/// A repository file as text.
pub fn repo_file(p: &str) -> String {
    std::fs::read_to_string(repo_root().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A cloud-config that appends `extra` config lines to /etc/omlboot/config.yaml (written by the base user-data).
pub fn config_append(extra: &str) -> String {
    let mut body = String::new();
    for line in extra
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
    {
        body.push_str("      ");
        body.push_str(line);
        body.push('\n');
    }
    format!("#cloud-config\nwrite_files:\n  - path: /etc/omlboot/config.yaml\n    append: true\n    permissions: '0600'\n    content: |\n{body}")
}

/// The stand-ins share their layers and the registry is local, so a TCG guest gains nothing from
/// parallel pulls and loses much: concurrent pulls of images with a common layer each unpack it (podman
/// 4.3). Bounded parallel pulls are tested against a real registry in tests/images_registry.rs.
const PULL_ONE_AT_A_TIME: &str = "image_pull_parallel: 1";

/// The overrides every VM scenario needs, as a config-appending cloud-config: stand-in image references,
/// no echo services, a TCG-sized unit start timeout, one pull at a time, then `extra`. A key in `extra`
/// replaces the stand-in's line for it (a config with a key twice is invalid).
pub fn test_overrides(extra: &str) -> String {
    let set_in_extra = |line: &str| {
        line.split_once(':')
            .is_some_and(|(k, _)| extra.lines().any(|e| e.starts_with(&format!("{k}:"))))
    };
    let images = repo_file("tests/e2e/standins/image-overrides.yaml");
    let images: Vec<&str> = images.lines().filter(|l| !set_in_extra(l)).collect();
    config_append(&format!(
        "public_ip_echo_urls: []\nunit_start_timeout_s: 600\n{PULL_ONE_AT_A_TIME}\n{}\n{extra}",
        images.join("\n")
    ))
}

/// `omlboot status --format json`: exit code and document.
pub fn status_json(g: &Guest) -> (i32, Value) {
    let out = g.exec("omlboot status --format json").expect("exec");
    (
        out.code,
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON ({e}): {}\n{}", out.stdout, out.stderr)),
    )
}

/// The unit of every component omlboot's status lists.
pub fn component_units(g: &Guest) -> Vec<String> {
    let (_, st) = status_json(g);
    st["components"]
        .as_object()
        .expect("components")
        .values()
        .map(|c| c["unit"].as_str().unwrap().to_string())
        .collect()
}

/// Every unit active (as systemd says, with its journal on failure) and enabled.
pub fn assert_units_active(g: &Guest, units: &[String]) {
    for u in units {
        let s = g.unit(u).expect("unit");
        assert_eq!(
            s.active_state,
            "active",
            "{u}: {s:?}\n{}",
            g.journal(u, 30).unwrap_or_default()
        );
        assert_eq!(g.is_enabled(u).unwrap(), "enabled", "{u}");
    }
}

/// /var/lib/omlboot/state.json of the guest.
pub fn state_json(g: &Guest) -> Value {
    let text = g
        .read_file("/var/lib/omlboot/state.json")
        .unwrap()
        .expect("state.json");
    serde_json::from_str(&text).expect("state.json parses")
}

/// Seconds from cloud-init's start (its first stage in /run/cloud-init/status.json) to omlboot's finish
/// (state.json finished_unix): guest clock, both ends.
pub fn first_boot_seconds(g: &Guest) -> f64 {
    let status: Value = serde_json::from_str(
        &g.read_file("/run/cloud-init/status.json")
            .unwrap()
            .expect("/run/cloud-init/status.json"),
    )
    .unwrap();
    let v1 = &status["v1"];
    let start = ["init-local", "init"]
        .iter()
        .filter_map(|s| v1[*s]["start"].as_f64())
        .reduce(f64::min)
        .unwrap_or_else(|| panic!("no stage start in status.json: {status:#}"));
    let finished = state_json(g)["finished_unix"]
        .as_f64()
        .expect("state.json finished_unix");
    finished - start
}

/// Total seconds of the state.json steps called `name`.
pub fn step_seconds(state: &Value, name: &str) -> f64 {
    state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name)
        .map(|s| s["duration_ms"].as_f64().unwrap())
        .sum::<f64>()
        / 1000.0
}

/// Where a run's time went: seconds per kind of step (the step name's first word: `file`, `unit`,
/// `probe`, ...), largest first, then the three slowest single steps. Steps of a kind that run
/// concurrently (probes, unit starts) add up to more than their wall time.
pub fn step_breakdown(state: &Value) -> String {
    let steps = state["steps"].as_array().unwrap();
    let mut kinds: std::collections::BTreeMap<&str, f64> = Default::default();
    let mut each: Vec<(&str, f64)> = Vec::new();
    for s in steps {
        let name = s["name"].as_str().unwrap_or("?");
        let secs = s["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        *kinds
            .entry(name.split(' ').next().unwrap_or(name))
            .or_default() += secs;
        each.push((name, secs));
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    each.sort_by(|a, b| b.1.total_cmp(&a.1));
    let kinds: Vec<String> = kinds.iter().map(|(k, s)| format!("{k} {s:.2}s")).collect();
    let slowest: Vec<String> = each
        .iter()
        .take(3)
        .map(|(k, s)| format!("{k} {s:.2}s"))
        .collect();
    format!(
        "{} steps: {}; slowest: {}",
        steps.len(),
        kinds.join(", "),
        slowest.join(", ")
    )
}

/// A query on the host's PostgreSQL as the application logs in (django.env's PG* values), one value
/// per line (`psql -tA`).
pub fn sql(g: &Guest, query: &str) -> String {
    let cmd = format!(
        "env_of() {{ grep \"^$1=\" /etc/default/django.env | cut -d= -f2-; }}; \
         podman exec -e PGPASSWORD=\"$(env_of PGPASSWORD)\" oml-postgresql-server \
         psql -h 127.0.0.1 -p \"$(env_of PGPORT)\" -U \"$(env_of PGUSER)\" -d \"$(env_of PGDATABASE)\" -tAc {}",
        super::sh_quote(query)
    );
    g.sh(&cmd).trim().to_string()
}

/// What a user sees first: the HTTP status of `https://<address>/` (the login redirect is 302).
pub fn https_status(g: &Guest, address: &str) -> String {
    g.sh(&format!(
        "curl -k -s -o /dev/null -w '%{{http_code}}' --max-time 20 https://{address}/"
    ))
    .trim()
    .to_string()
}

/// After an interrupted first provisioning and the run that finished it: every bootstrap task
/// succeeded (in the last run, or in an earlier one and then `skipped`, its success kept), the
/// run-once admin reset ran exactly once (state.json and the stand-in's `e2e_admin_resets`), and every
/// probe passed. Returns `name outcome (Nx)` per task, for the figures.
pub fn assert_bootstrapped_once(g: &Guest, state: &Value) -> Vec<String> {
    let mut tasks = vec![];
    for (name, t) in state["tasks"].as_object().expect("tasks in state") {
        assert!(
            matches!(t["outcome"].as_str(), Some("succeeded" | "skipped"))
                && t["successes"].as_u64().unwrap_or(0) >= 1,
            "task {name}: {t:#}"
        );
        tasks.push(format!(
            "{name} {} ({}x)",
            t["outcome"].as_str().unwrap(),
            t["successes"]
        ));
    }
    assert_eq!(state["tasks"]["admin_password"]["successes"], 1);
    assert_eq!(sql(g, "SELECT count(*) FROM e2e_admin_resets"), "1");
    for (name, c) in state["components"].as_object().unwrap() {
        if let Some(p) = c.get("probe") {
            assert_eq!(p["passed"], true, "probe of {name}: {p:#}");
        }
    }
    tasks
}
