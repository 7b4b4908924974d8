//! The engine's decisions on in-memory fakes (omlboot::apply::fake): order, restart only what
//! changed, a failed unit, a failed image, optional against required, and a re-run that does
//! nothing. Files go to a temporary root; packages, images and units are the fakes'. Milliseconds.
mod plan_support;
use omlboot::apply::engine::{self, Options};
use omlboot::apply::fake::{self, Calls, FakeHost};
use omlboot::apply::state::Status;
use omlboot::facts::os::PkgFamily;
use omlboot::plan::{Plan, Step};
use omlboot::target::Target;
use plan_support::{plan_of, AIO};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

fn plan() -> Plan {
    plan_of(AIO)
}

fn refs(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::Image { reference, .. } => Some(reference.clone()),
            _ => None,
        })
        .collect()
}

fn start_units(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::Start { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect()
}

/// A host whose registry serves every image of `plan` except `unpullable`, and whose units fail
/// to start when listed in `failing`.
fn host(plan: &Plan, unpullable: &[&str], failing: &[&str]) -> (FakeHost, Calls) {
    let calls = Calls::default();
    let registry: BTreeMap<String, String> = refs(plan)
        .into_iter()
        .filter(|r| !unpullable.iter().any(|u| r.contains(u)))
        .enumerate()
        .map(|(i, r)| (r, format!("{i:064x}")))
        .collect();
    let host = fake::host(&calls, registry, failing);
    (host, calls)
}

fn options(root: &Path) -> Options {
    Options {
        target: Target::Offline(root.to_path_buf()),
        family: PkgFamily::Apt,
        skip_packages: false,
        image_bundle: None,
        images: Default::default(),
        packages: Default::default(),
        start_deadline: Duration::from_secs(5),
        probe_interval: Duration::from_millis(500),
        instance_id: "test-instance".into(),
    }
}

fn apply(plan: &Plan, root: &Path, host: &FakeHost) -> omlboot::apply::state::State {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(engine::apply_on(plan, &options(root), host))
        .unwrap()
}

fn state_of(s: &omlboot::apply::state::State, component: &str) -> String {
    s.components[component].state.clone()
}

#[test]
fn first_apply_pulls_reloads_enables_and_starts_in_plan_order() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, calls) = host(&plan, &[], &[]);
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    let all = calls.all();
    assert!(all[0].starts_with("packages podman"), "{all:?}");
    assert_eq!(calls.with("pull ").len(), refs(&plan).len());
    let reload = all.iter().position(|c| c == "daemon-reload").unwrap();
    let enable = all.iter().position(|c| c.starts_with("enable ")).unwrap();
    let first_start = all.iter().position(|c| c.starts_with("start ")).unwrap();
    assert!(reload < enable && enable < first_start, "{all:?}");
    // Starts follow the plan's start steps exactly (podman.socket, a host unit, first).
    let started: Vec<String> = calls
        .with("start ")
        .into_iter()
        .map(|c| c["start ".len()..].to_string())
        .filter(|u| u != "podman.socket")
        .collect();
    assert_eq!(started, start_units(&plan));
    assert!(root.path().join("etc/default/django.env").is_file());
}

#[test]
fn a_converged_rerun_lists_nothing_reloads_nothing_and_starts_nothing() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, calls) = host(&plan, &[], &[]);
    apply(&plan, root.path(), &host);
    let before = calls.all().len();
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Done);
    let again: Vec<String> = calls.all()[before..]
        .iter()
        .filter(|c| !c.starts_with("probe "))
        .cloned()
        .collect();
    // Only the package check and the health probes remain: no image listing, pull, bundle, reload,
    // enable, start or task.
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].starts_with("packages "), "{again:?}");
    assert!(s.steps.iter().all(|st| st.outcome != "changed"));
}

#[test]
fn only_the_unit_whose_file_changed_restarts() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, calls) = host(&plan, &[], &[]);
    apply(&plan, root.path(), &host);
    // Someone edits redis's env file: apply puts it back and restarts redis alone.
    std::fs::write(root.path().join("etc/default/redis.env"), "edited\n").unwrap();
    let before = calls.all().len();
    let s = apply(&plan, root.path(), &host);
    let again: Vec<String> = calls.all()[before..].to_vec();
    assert_eq!(s.status, Status::Done);
    let restarts: Vec<&String> = again.iter().filter(|c| c.starts_with("restart ")).collect();
    assert_eq!(restarts, ["restart redis.service"], "{again:?}");
    assert!(!again.iter().any(|c| c.starts_with("start ")), "{again:?}");
    // An env file is not a unit file: no daemon-reload.
    assert!(!again.iter().any(|c| c == "daemon-reload"), "{again:?}");
}

#[test]
fn a_restart_a_killed_run_owed_is_made_by_the_next_run_though_no_file_changes_then() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, calls) = host(&plan, &[], &[]);
    apply(&plan, root.path(), &host);
    // redis's env file must change, and its write fails (a directory is in the way): the run stops
    // where a kill -9 between the write and the restart would stop it, its debt recorded first.
    let env = root.path().join("etc/default/redis.env");
    let wanted = std::fs::read(&env).unwrap();
    let mode = std::fs::metadata(&env).unwrap().permissions();
    std::fs::remove_file(&env).unwrap();
    std::fs::create_dir(&env).unwrap();
    let run = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(engine::apply_on(&plan, &options(root.path()), &host));
    assert!(run.is_err(), "the write fails");
    let left = omlboot::apply::state::State::load(root.path())
        .unwrap()
        .unwrap();
    assert!(
        left.restart_owed.contains("redis"),
        "{:?}",
        left.restart_owed
    );
    // As the killed run left it: the file written, redis not restarted.
    std::fs::remove_dir(&env).unwrap();
    std::fs::write(&env, &wanted).unwrap();
    std::fs::set_permissions(&env, mode).unwrap();
    let before = calls.all().len();
    let s = apply(&plan, root.path(), &host);
    let again: Vec<String> = calls.all()[before..].to_vec();
    let restarts: Vec<&String> = again.iter().filter(|c| c.starts_with("restart ")).collect();
    assert_eq!(restarts, ["restart redis.service"], "{again:?}");
    assert!(s.restart_owed.is_empty(), "paid: {:?}", s.restart_owed);
    // Paid once: the run after it restarts nothing.
    let before = calls.all().len();
    apply(&plan, root.path(), &host);
    assert!(
        !calls.all()[before..]
            .iter()
            .any(|c| c.starts_with("restart ")),
        "{:?}",
        &calls.all()[before..]
    );
}

#[test]
fn a_changed_unit_file_reloads_and_restarts_that_unit() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, calls) = host(&plan, &[], &[]);
    apply(&plan, root.path(), &host);
    std::fs::write(root.path().join("etc/systemd/system/nginx.service"), "x\n").unwrap();
    let before = calls.all().len();
    apply(&plan, root.path(), &host);
    let again: Vec<String> = calls.all()[before..].to_vec();
    assert!(again.iter().any(|c| c == "daemon-reload"), "{again:?}");
    let restarts: Vec<&String> = again.iter().filter(|c| c.starts_with("restart ")).collect();
    assert_eq!(restarts, ["restart nginx.service"], "{again:?}");
}

#[test]
fn a_required_unit_that_fails_fails_the_host_and_the_others_still_start() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, calls) = host(&plan, &[], &["kamailio.service"]);
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Failed);
    assert_eq!(state_of(&s, "kamailio"), "failed");
    assert!(s.components["kamailio"]
        .reason
        .as_ref()
        .unwrap()
        .contains("exited with status 1"));
    assert_eq!(state_of(&s, "nginx"), "active");
    assert_eq!(calls.with("start ").len(), start_units(&plan).len() + 1);
}

#[test]
fn an_optional_unit_that_fails_degrades_the_host() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, _) = host(&plan, &[], &["prometheus.service"]);
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Degraded);
    assert_eq!(state_of(&s, "prometheus"), "failed");
}

#[test]
fn a_missing_image_fails_its_components_without_starting_them() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    // omnileads_img is used by omnileads, daphne and omlcron: all three fail, none is started.
    let (host, calls) = host(&plan, &["omlapp"], &[]);
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Failed);
    for c in ["omnileads", "daphne", "omlcron"] {
        assert_eq!(state_of(&s, c), "failed", "{c}");
        assert!(s.components[c]
            .reason
            .as_ref()
            .unwrap()
            .contains("NotFound"));
    }
    let started: BTreeSet<String> = calls.with("start ").into_iter().collect();
    assert!(!started.contains("start omnileads.service"));
    assert!(started.contains("start redis.service"));
}

#[test]
fn a_missing_optional_image_only_degrades() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, _) = host(&plan, &["node-exporter"], &[]);
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Degraded);
    assert_eq!(state_of(&s, "prometheus_node_exporter"), "failed");
}

#[test]
fn failed_packages_stop_before_any_file_or_unit() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (mut host, calls) = host(&plan, &[], &[]);
    host.packages.broken.insert("podman".into());
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Failed);
    assert_eq!(calls.all().len(), 1, "{:?}", calls.all());
    assert!(!root.path().join("etc/default/django.env").exists());
}

#[test]
fn stages_group_consecutive_image_and_start_steps() {
    let plan = plan();
    let stages = engine::stages(&plan.steps);
    let images = stages
        .iter()
        .filter(|s| matches!(s, engine::Stage::Images(_)))
        .count();
    let units: Vec<usize> = stages
        .iter()
        .filter_map(|s| match s {
            engine::Stage::Units(u) => Some(u.len()),
            _ => None,
        })
        .collect();
    assert_eq!(images, 1);
    // The bootstrap tasks split the starts: what they need, then what needs them.
    assert_eq!(units.iter().sum::<usize>(), start_units(&plan).len());
    assert_eq!(units.len(), 2, "{units:?}");
}

#[test]
fn a_run_after_a_killed_one_keeps_what_the_killed_run_did() {
    let plan = plan();
    let root = tempfile::tempdir().unwrap();
    let (host, _calls) = host(&plan, &[], &[]);
    let done = apply(&plan, root.path(), &host);
    assert_eq!(done.interrupted, None);
    // As a kill -9 or a power cut leaves it: still running, part of the steps recorded.
    let mut killed = done.clone();
    killed.status = Status::Running;
    killed.steps.truncate(7);
    killed.finished_unix = None;
    killed.save(root.path()).unwrap();
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    let i = s.interrupted.expect("the killed run is summarised");
    assert_eq!(i.steps, 7);
    assert_eq!(i.last_step.as_deref(), Some(killed.steps[6].name.as_str()));
    assert_eq!(i.started_unix, killed.started_unix);
    assert_eq!(i.components, plan.components.len());
    // A finished run is not an interrupted one.
    assert_eq!(apply(&plan, root.path(), &host).interrupted, None);
}
