//! Bootstrap tasks and health probes in the engine, on the in-memory fakes: where tasks run in the
//! order, that a converged host runs none, that a new omlapp image runs the migrations again (and
//! never the admin reset), that a failed task blocks the units that need it, and that a probe that
//! never passes fails the host. Time is paused: a probe deadline passes at once.
mod plan_support;
use omlboot::apply::engine::{self, Options};
use omlboot::apply::fake::{self, Calls, FakeHost};
use omlboot::apply::state::{State, Status};
use omlboot::facts::os::PkgFamily;
use omlboot::plan::{Plan, Step};
use omlboot::target::Target;
use plan_support::{plan_of, AIO};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn registry(plan: &Plan, salt: &str) -> BTreeMap<String, String> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::Image { reference, .. } => Some(reference.clone()),
            _ => None,
        })
        .map(|r| {
            let id = format!("{:x}{salt}", r.len());
            (r, id)
        })
        .collect()
}

fn apply(plan: &Plan, root: &Path, host: &FakeHost) -> State {
    let opts = Options {
        target: Target::Offline(root.to_path_buf()),
        family: PkgFamily::Apt,
        skip_packages: true,
        image_bundle: None,
        images: Default::default(),
        packages: Default::default(),
        start_deadline: Duration::from_secs(5),
        probe_interval: Duration::from_secs(2),
        instance_id: "bootstrap".into(),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(engine::apply_on(plan, &opts, host))
        .unwrap()
}

fn index(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no call {call:?} in {calls:?}"))
}

#[test]
fn tasks_run_after_what_they_need_is_healthy_and_before_what_needs_them() {
    let plan = plan_of(AIO);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = fake::host(&calls, registry(&plan, ""), &[]);
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    let all = calls.all();
    let migrations = index(&all, "task django_migrations");
    let bucket = index(&all, "task minio_bucket_user");
    // What they need was started and probed first.
    assert!(index(&all, "start postgresql.service") < migrations);
    let pg_probe = all
        .iter()
        .position(|c| c.starts_with("probe postgres "))
        .unwrap();
    assert!(pg_probe < migrations, "{all:?}");
    let minio_probe = all
        .iter()
        .position(|c| c.contains("minio/health/live"))
        .unwrap();
    assert!(minio_probe < bucket, "{all:?}");
    // What needs them starts after every task.
    let last_task = ["django_commands", "admin_password", "django_migrations"]
        .iter()
        .map(|t| index(&all, &format!("task {t}")))
        .max()
        .unwrap();
    for unit in ["omnileads", "daphne", "omlcron", "nginx", "ami"] {
        assert!(
            index(&all, &format!("start {unit}.service")) > last_task,
            "{unit}: {all:?}"
        );
    }
    // Every required component's probe passed, with its time.
    for c in ["postgresql", "redis", "minio", "nginx", "omnileads"] {
        let p = s.components[c].probe.as_ref().expect(c);
        assert!(p.passed && p.at_unix > 0, "{c}: {p:?}");
    }
    assert_eq!(s.tasks["admin_password"].successes, 1);
    assert!(s.notices.iter().any(|n| n.contains("admin/admin")));
}

#[test]
fn a_converged_host_runs_no_task_and_restarts_nothing() {
    let plan = plan_of(AIO);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = fake::host(&calls, registry(&plan, ""), &[]);
    apply(&plan, root.path(), &host);
    let before = calls.all().len();
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    let again = calls.all()[before..].to_vec();
    assert!(
        again
            .iter()
            .all(|c| c.starts_with("probe ") || c.starts_with("packages")),
        "{again:?}"
    );
    for (name, t) in &s.tasks {
        assert_eq!(t.outcome, "skipped", "{name}");
        assert_eq!(t.successes, 1, "{name}");
    }
    // Every probe still ran, all in one batch after the last task was skipped (issue 8: a no-op
    // waits for the slowest probe once, not once per stage).
    let steps: Vec<&str> = s.steps.iter().map(|r| r.name.as_str()).collect();
    let last_task = steps.iter().rposition(|n| n.starts_with("task ")).unwrap();
    let first_probe = steps.iter().position(|n| n.starts_with("probe ")).unwrap();
    assert!(first_probe > last_task, "{steps:?}");
    for c in plan.components.iter().filter(|c| c.probe.is_some()) {
        let probe = s.components[&c.name].probe.as_ref();
        assert!(probe.is_some_and(|p| p.passed), "{}: {probe:?}", c.name);
    }
}

#[test]
fn a_new_omlapp_image_runs_the_migrations_again_never_the_admin_reset_and_restarts_only_omlapp_units(
) {
    let plan = plan_of(AIO);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = fake::host(&calls, registry(&plan, ""), &[]);
    apply(&plan, root.path(), &host);

    // The operator moves omnileads_img to a new tag.
    let newer = plan_of(&format!(
        "{AIO}omnileads_img: docker.io/omnileads/omlapp:250101.01\n"
    ));
    let before = calls.all().len();
    let mut host2 = fake::host(&calls, registry(&newer, "new"), &[]);
    // Same host: the units run, the other images are present.
    host2.services = host.services.clone();
    for (r, id) in registry(&newer, "") {
        if !r.contains("omlapp") {
            host2.images.present.lock().unwrap().insert(r, id);
        }
    }
    let s = apply(&newer, root.path(), &host2);
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    let all = calls.all()[before..].to_vec();
    assert!(
        all.contains(&"task django_migrations".to_string()),
        "{all:?}"
    );
    assert!(all.contains(&"task django_commands".to_string()), "{all:?}");
    assert!(!all.contains(&"task admin_password".to_string()), "{all:?}");
    assert!(
        !all.contains(&"task minio_bucket_user".to_string()),
        "{all:?}"
    );
    assert_eq!(s.tasks["django_migrations"].successes, 2);
    assert_eq!(s.tasks["admin_password"].successes, 1);
    // A task that runs has its peers probed first, though none of them restarted.
    let steps: Vec<&str> = s.steps.iter().map(|r| r.name.as_str()).collect();
    let at = |name: &str| {
        steps
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name}: {steps:?}"))
    };
    assert!(
        at("probe postgresql") < at("task django_migrations"),
        "{steps:?}"
    );
    let mut restarted: Vec<&str> = all
        .iter()
        .filter_map(|c| c.strip_prefix("restart "))
        .collect();
    restarted.sort();
    assert_eq!(
        restarted,
        ["daphne.service", "omlcron.service", "omnileads.service"]
    );
}

#[test]
fn a_failed_task_fails_the_run_names_itself_and_blocks_what_needs_it() {
    let plan = plan_of(AIO);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = fake::host(&calls, registry(&plan, ""), &[]);
    host.runtime
        .failing_tasks
        .lock()
        .unwrap()
        .insert("django_migrations".into());
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Failed);
    let t = &s.tasks["django_migrations"];
    assert_eq!((t.outcome.as_str(), t.exit_status), ("failed", Some(3)));
    assert!(t.output_tail.contains("does not exist"), "{t:?}");
    assert!(s.errors.iter().any(|e| e.contains("django_migrations")));
    let all = calls.all();
    for c in ["omnileads", "daphne", "omlcron", "nginx"] {
        assert!(!all.contains(&format!("start {c}.service")), "{c}: {all:?}");
        assert_eq!(s.components[c].state, "failed");
        assert!(s.components[c]
            .reason
            .as_deref()
            .unwrap()
            .contains("django_migrations"));
    }
    // What does not need it still starts.
    assert!(all.contains(&"start asterisk.service".to_string()));

    // Fixed: the next run runs it (it never succeeded) and starts what it blocked.
    host.runtime.failing_tasks.lock().unwrap().clear();
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    assert_eq!(s.tasks["django_migrations"].successes, 1);
}

#[test]
fn a_probe_that_never_passes_fails_the_host_and_blocks_the_tasks_that_need_it() {
    let plan = plan_of(AIO);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = fake::host(&calls, registry(&plan, ""), &[]);
    host.runtime
        .failing_probes
        .lock()
        .unwrap()
        .insert("postgres omnileads@".into());
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Failed);
    let p = s.components["postgresql"].probe.as_ref().unwrap();
    assert!(!p.passed && p.attempts > 1, "{p:?}");
    assert!(p.detail.contains("gave up after 180s"), "{p:?}");
    assert_eq!(s.tasks["django_migrations"].outcome, "blocked");
    assert!(!calls.all().contains(&"task django_migrations".to_string()));
}

#[test]
fn a_converged_host_whose_nginx_stops_answering_is_failed() {
    let plan = plan_of(AIO);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = fake::host(&calls, registry(&plan, ""), &[]);
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Done);
    // nginx is required: its probe failing fails the host.
    host.runtime
        .failing_probes
        .lock()
        .unwrap()
        .insert("https://10.20.0.10/".into());
    let s = apply(&plan, root.path(), &host);
    assert_eq!(s.status, Status::Failed);
    assert!(!s.components["nginx"].probe.as_ref().unwrap().passed);
}
