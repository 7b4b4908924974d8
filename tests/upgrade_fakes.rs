//! Upgrade, rollback and telephony safety on the in-memory fakes, time paused (a probe deadline, a
//! stability window or a drain timeout passes at once; the wall clock is simulated from a fixed
//! Monday 00:00 UTC).
mod plan_support;
use omlboot::apply::drain::Window;
use omlboot::apply::engine::{self, Options};
use omlboot::apply::fake::{self, Calls, FakeHost, FakeImages};
use omlboot::apply::state::{State, Status};
use omlboot::apply::upgrade::{self, Day2, JStep, Journal};
use omlboot::config::{Config, Sources};
use omlboot::error::Code;
use omlboot::facts::os::PkgFamily;
use omlboot::plan::{Plan, Step};
use omlboot::target::Target;
use plan_support::AIO;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// 2026-12-07 00:00 UTC, a Monday.
const MONDAY: u64 = 1_796_601_600;

const OMLAPP_2: &str = "omnileads_img: docker.io/omnileads/omlapp:e2e-2\n";
const KAMAILIO_2: &str = "kamailio_img: docker.io/omnileads/kamailio:e2e-2\n";
const ASTERISK_2: &str = "asterisk_img: docker.io/omnileads/asterisk:e2e-2\n";
const WEBSOCKETS_2: &str = "websockets_img: docker.io/omnileads/websockets:e2e-2\n";

fn plan_of(extra: &str) -> Plan {
    plan_support::plan_of(&format!("{AIO}{extra}"))
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

/// Image id of a reference in the fake registry: unique per reference.
fn id_of(reference: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    reference.hash(&mut h);
    format!("sha256:{:016x}{:016x}", h.finish(), reference.len())
}

fn image_of(plan: &Plan, component: &str) -> String {
    plan.components
        .iter()
        .find(|c| c.name == component)
        .unwrap()
        .image
        .clone()
}

/// A fake host whose registry serves every image of every plan given.
fn host(calls: &Calls, plans: &[&Plan]) -> FakeHost {
    let registry: BTreeMap<String, String> = plans
        .iter()
        .flat_map(|p| refs(p))
        .map(|r| (r.clone(), id_of(&r)))
        .collect();
    fake::host(calls, registry, &[])
}

fn options(root: &Path) -> Options {
    Options {
        target: Target::Offline(root.to_path_buf()),
        family: PkgFamily::Apt,
        skip_packages: true,
        image_bundle: None,
        images: Default::default(),
        packages: Default::default(),
        start_deadline: Duration::from_secs(5),
        probe_interval: Duration::from_secs(2),
        instance_id: "upgrade".into(),
    }
}

fn day2() -> Day2 {
    Day2 {
        stability_window: Duration::from_secs(30),
        drain_timeout: Duration::from_secs(600),
        drain_poll: Duration::from_secs(5),
        clock_start_unix: Some(MONDAY),
        ..Default::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn apply(plan: &Plan, root: &Path, host: &FakeHost, day2: &Day2) -> anyhow::Result<State> {
    fake::wire(host, plan);
    rt().block_on(engine::apply_with(plan, &options(root), host, day2))
}

/// Installed from `plan` (every record on its first image).
fn installed(calls: &Calls, root: &Path, plans: &[&Plan]) -> FakeHost {
    let host = host(calls, plans);
    let s = apply(plans[0], root, &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    assert_eq!(s.upgrades["asterisk"].outcome, "installed");
    host
}

fn restarts(calls: &[String]) -> Vec<String> {
    let mut r: Vec<String> = calls
        .iter()
        .filter_map(|c| {
            c.strip_prefix("restart ")
                .or_else(|| c.strip_prefix("start "))
                .map(str::to_string)
        })
        .collect();
    r.sort();
    r.dedup();
    r
}

fn index(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no call {call:?} in {calls:?}"))
}

fn last_index(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .rposition(|c| c == call)
        .unwrap_or_else(|| panic!("no call {call:?} in {calls:?}"))
}

#[test]
fn two_upgrades_one_never_passes_its_probe_first_upgraded_second_rolled_back_rest_untouched_exit_3()
{
    let v1 = plan_of("");
    let v2 = plan_of(&format!("{KAMAILIO_2}{OMLAPP_2}"));
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    let (old_app, new_app) = (
        id_of(&image_of(&v1, "omnileads")),
        id_of(&image_of(&v2, "omnileads")),
    );
    let (old_kam, new_kam) = (
        id_of(&image_of(&v1, "kamailio")),
        id_of(&image_of(&v2, "kamailio")),
    );
    host.runtime
        .broken_images
        .lock()
        .unwrap()
        .insert(new_app.clone());

    let before = calls.all().len();
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    let all = calls.all()[before..].to_vec();

    // Exit 3: rolled back, healthy on the old version.
    assert_eq!(
        s.status,
        Status::Degraded,
        "{:?} {:?}",
        s.errors,
        s.components
    );
    assert_eq!(s.status.code(), Code::Degraded);
    let k = &s.upgrades["kamailio"];
    assert_eq!(
        (k.outcome.as_str(), k.image_id.as_str()),
        ("upgraded", new_kam.as_str())
    );
    assert_eq!(k.previous_id.as_deref(), Some(old_kam.as_str()));
    assert!(k
        .previous_tag
        .as_deref()
        .unwrap()
        .starts_with("localhost/omlboot-previous/kamailio:"));
    for c in ["omnileads", "daphne", "omlcron"] {
        let r = &s.upgrades[c];
        assert_eq!(r.outcome, "rolled back", "{c}: {r:?}");
        assert_eq!(r.image_id, old_app, "{c}");
        assert_eq!(r.rejected_id.as_deref(), Some(new_app.as_str()));
        assert!(
            r.reason.as_deref().unwrap().contains("probe failed"),
            "{r:?}"
        );
        assert_eq!(s.components[c].state, "active", "{c}");
        assert!(
            s.components[c].probe.as_ref().is_none_or(|p| p.passed),
            "{c}"
        );
    }
    // The reference the units run names the previous image again; both previous images are kept.
    let present = host.images.present.lock().unwrap().clone();
    assert_eq!(present[&image_of(&v2, "omnileads")], old_app);
    assert!(present
        .iter()
        .any(|(r, id)| r.starts_with("localhost/omlboot-previous/kamailio:") && *id == old_kam));
    assert!(present
        .iter()
        .any(|(r, id)| r.starts_with("localhost/omlboot-previous/omnileads:") && *id == old_app));
    // Every unit runs one image: omlapp's all the old one.
    let running = host.services.running.lock().unwrap().clone();
    for u in ["omnileads.service", "daphne.service", "omlcron.service"] {
        assert_eq!(running[u], old_app, "{u}");
    }
    assert_eq!(running["kamailio.service"], new_kam);
    // Only the two groups were restarted: the other units saw no start or restart.
    assert_eq!(
        restarts(&all),
        [
            "daphne.service",
            "kamailio.service",
            "omlcron.service",
            "omnileads.service"
        ]
    );
    // Dump before the migrations of the new image, restored by the rollback.
    let dump = all
        .iter()
        .position(|c| c.starts_with("dump "))
        .expect("dump");
    assert!(dump < index(&all, "task django_migrations"), "{all:?}");
    let restore = all
        .iter()
        .position(|c| c.starts_with("restore "))
        .expect("restore");
    assert!(
        restore > last_index(&all, "restart omnileads.service") - 4,
        "{all:?}"
    );
    assert!(root
        .path()
        .join(
            s.upgrades["omnileads"]
                .dump
                .as_deref()
                .unwrap()
                .trim_start_matches('/')
        )
        .is_file());
    // Data, then voice, then app: kamailio was upgraded before omlapp was touched.
    assert!(index(&all, "restart kamailio.service") < index(&all, "restart omnileads.service"));
    // The journal: written before every step, finished.
    let j = Journal::load(root.path()).unwrap().unwrap();
    assert!(j.done);
    assert_eq!(j.groups[&image_of(&v2, "kamailio")].step, JStep::Upgraded);
    assert_eq!(
        j.groups[&image_of(&v2, "omnileads")].step,
        JStep::RolledBack
    );
    let steps: Vec<JStep> = j
        .entries
        .iter()
        .filter(|e| e.reference == image_of(&v2, "omnileads"))
        .map(|e| e.step)
        .collect();
    assert_eq!(
        steps,
        [
            JStep::Pulled,
            JStep::PreviousTagged,
            JStep::DumpTaken,
            JStep::Restarting,
            JStep::Probing,
            JStep::RollingBack,
            JStep::RolledBack
        ]
    );
    // status explains.
    let lines = upgrade::status_lines(&s);
    assert!(
        lines.contains("rolled back: omnileads: probe failed"),
        "{lines}"
    );

    // A re-run converges: nothing restarted, the rolled back reference is not tried again.
    let before = calls.all().len();
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert!(
        restarts(&calls.all()[before..]).is_empty(),
        "{:?}",
        &calls.all()[before..]
    );
    assert_eq!(s.upgrades["omnileads"].outcome, "rolled back");
}

#[test]
fn asterisk_carrying_a_call_waits_until_it_ends_while_the_rest_proceeds_and_status_says_so() {
    let v1 = plan_of("");
    let v2 = plan_of(&format!("{ASTERISK_2}{WEBSOCKETS_2}"));
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    // One call, for a while (30 polls of 5 s).
    host.runtime.call_counts.lock().unwrap().insert(
        "oml-asterisk-server".into(),
        std::iter::repeat_n(1, 30).collect(),
    );
    fake::wire(&host, &v2);
    let before = calls.all().len();
    let d = day2();
    let opts = options(root.path());
    let s = rt().block_on(async {
        let run = engine::apply_with(&v2, &opts, &host, &d);
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => panic!("the upgrade did not wait for the call"),
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        // While it waits, status says which component waits for what.
        let mid = State::load(root.path()).unwrap().unwrap();
        assert_eq!(mid.components["asterisk"].state, "waiting");
        assert_eq!(mid.upgrades["asterisk"].outcome, "waiting for drain");
        assert!(mid.upgrades["asterisk"]
            .reason
            .as_deref()
            .unwrap()
            .contains("1 call"));
        // The rest of the upgrade went on meanwhile.
        assert_eq!(mid.upgrades["websockets"].outcome, "upgraded");
        // The call ends.
        host.runtime
            .call_counts
            .lock()
            .unwrap()
            .insert("oml-asterisk-server".into(), [0].into());
        run.await.unwrap()
    });
    let all = calls.all()[before..].to_vec();
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    let a = &s.upgrades["asterisk"];
    assert_eq!(a.outcome, "upgraded");
    assert!(a.reason.as_deref().unwrap().contains("no call"), "{a:?}");
    assert!(host.runtime.call_polls("oml-asterisk-server") >= 3);
    // websockets comes after asterisk in the plan, yet restarted first: the wait did not block it.
    assert!(index(&all, "restart websockets.service") < index(&all, "restart asterisk.service"));
    assert_eq!(restarts(&all), ["asterisk.service", "websockets.service"]);
}

#[test]
fn with_a_closed_maintenance_window_a_call_that_does_not_end_waits_for_the_window() {
    let v1 = plan_of("");
    let v2 = plan_of(ASTERISK_2);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    host.runtime
        .call_counts
        .lock()
        .unwrap()
        .insert("oml-asterisk-server".into(), [2].into());
    let mut d = day2();
    d.window = Window::parse(Some("mon"), Some("02-05")).unwrap();
    d.drain_timeout = Duration::from_secs(120);
    fake::wire(&host, &v2);
    let opts = options(root.path());
    let s = rt().block_on(async {
        let run = engine::apply_with(&v2, &opts, &host, &d);
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => panic!("the upgrade did not wait for the window"),
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        let mid = State::load(root.path()).unwrap().unwrap();
        assert_eq!(mid.upgrades["asterisk"].outcome, "waiting for window");
        let why = mid.upgrades["asterisk"].reason.clone().unwrap();
        assert!(
            why.contains(&format!("opens at {}", MONDAY + 2 * 3600)),
            "{why}"
        );
        run.await.unwrap()
    });
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    let a = &s.upgrades["asterisk"];
    assert_eq!(a.outcome, "upgraded");
    assert!(
        a.reason
            .as_deref()
            .unwrap()
            .contains("window mon 02-05 UTC is open"),
        "{a:?}"
    );
    // It restarted at 02:00, not before: about 2 h of polls every 5 s.
    assert!(host.runtime.call_polls("oml-asterisk-server") >= 1400);
}

#[test]
fn force_restarts_a_voice_component_carrying_calls_at_once_and_says_so() {
    let v1 = plan_of("");
    let v2 = plan_of(ASTERISK_2);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    host.runtime
        .call_counts
        .lock()
        .unwrap()
        .insert("oml-asterisk-server".into(), [3].into());
    let mut d = day2();
    d.force = true;
    let s = apply(&v2, root.path(), &host, &d).unwrap();
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    assert_eq!(host.runtime.call_polls("oml-asterisk-server"), 1);
    let a = &s.upgrades["asterisk"];
    assert_eq!(a.outcome, "upgraded");
    assert!(
        a.reason
            .as_deref()
            .unwrap()
            .contains("--force: restarted at once, carrying 3 calls"),
        "{a:?}"
    );
}

#[test]
fn a_config_change_of_asterisk_waits_for_its_call_too_and_gives_up_without_a_window() {
    // ami_password touches asterisk's env: a restart, not an image change.
    let v1 = plan_of("");
    let v2 = plan_support::plan_of(&AIO.replace("Ami-Pass-1", "Ami-Pass-2"));
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1]);
    host.runtime
        .call_counts
        .lock()
        .unwrap()
        .insert("oml-asterisk-server".into(), [1].into());
    let before = calls.all().len();
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    let all = calls.all()[before..].to_vec();
    // The other units the change touches restarted; asterisk kept its call.
    assert!(
        !all.contains(&"restart asterisk.service".to_string()),
        "{all:?}"
    );
    assert!(all.contains(&"restart ami.service".to_string()), "{all:?}");
    assert_eq!(s.status, Status::Failed);
    let a = &s.upgrades["asterisk"];
    assert_eq!(a.outcome, "not restarted");
    assert!(
        a.reason.as_deref().unwrap().contains("drain_timeout_s=600"),
        "{a:?}"
    );
    // The call ends: the next run restarts it.
    host.runtime
        .call_counts
        .lock()
        .unwrap()
        .insert("oml-asterisk-server".into(), [0].into());
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    assert_eq!(s.upgrades["asterisk"].outcome, "restarted");
}

#[test]
fn rollback_goes_back_to_the_previous_images_offline() {
    let v1 = plan_of("");
    let v2 = plan_of(&format!("{KAMAILIO_2}{OMLAPP_2}"));
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    assert_eq!(s.upgrades["kamailio"].outcome, "upgraded");
    // The registry is gone.
    let offline: FakeHost = omlboot::apply::engine::Host {
        packages: Default::default(),
        images: FakeImages {
            calls: calls.clone(),
            registry: BTreeMap::new(),
            present: host.images.present.clone(),
        },
        services: host.services.clone(),
        runtime: host.runtime.clone(),
    };
    let before = calls.all().len();
    let s = rt()
        .block_on(upgrade::rollback_on(
            &v2,
            &options(root.path()),
            &day2(),
            &offline,
            &["kamailio".to_string()],
        ))
        .unwrap();
    let all = calls.all()[before..].to_vec();
    assert!(all.iter().all(|c| !c.starts_with("pull ")), "{all:?}");
    assert_eq!(restarts(&all), ["kamailio.service"]);
    let k = &s.upgrades["kamailio"];
    assert_eq!(k.outcome, "rolled back");
    assert_eq!(k.image_id, id_of(&image_of(&v1, "kamailio")));
    // Gated by its probe, and status shows that probe (the VM scenario found it missing).
    let probe = s.components["kamailio"].probe.as_ref();
    assert!(probe.is_some_and(|p| p.passed), "{probe:?}");
    // The image it left is kept as the previous one: the rollback can be undone.
    assert_eq!(
        k.previous_id.as_deref(),
        Some(id_of(&image_of(&v2, "kamailio")).as_str())
    );
    assert_eq!(
        host.services.running.lock().unwrap()["kamailio.service"],
        id_of(&image_of(&v1, "kamailio"))
    );
    assert_eq!(s.status, Status::Done);
    assert_eq!(s.upgrades["omnileads"].outcome, "upgraded");
    // Rolling omlapp back restores its dump.
    let s = rt()
        .block_on(upgrade::rollback_on(
            &v2,
            &options(root.path()),
            &day2(),
            &offline,
            &[],
        ))
        .unwrap();
    assert!(calls.all().iter().any(|c| c.starts_with("restore ")));
    assert_eq!(s.upgrades["omnileads"].outcome, "rolled back");
    assert_eq!(
        s.upgrades["daphne"].image_id,
        id_of(&image_of(&v1, "omnileads"))
    );
    // A component without a previous image is refused.
    let e = rt()
        .block_on(upgrade::rollback_on(
            &v2,
            &options(root.path()),
            &day2(),
            &offline,
            &["redis".into()],
        ))
        .unwrap_err();
    assert!(format!("{e:#}").contains("no previous image"), "{e:#}");
}

/// kill -9 right after each journal step, then a plain re-run: every component ends on exactly the
/// old or the new image (all units of a group on the same one), healthy, the journal finished.
#[test]
fn killed_at_every_journal_step_a_rerun_converges_to_old_or_new_never_a_mix() {
    let v1 = plan_of("");
    let v2 = plan_of(&format!("{KAMAILIO_2}{OMLAPP_2}"));
    let steps = [
        JStep::Pulled,
        JStep::PreviousTagged,
        JStep::DumpTaken,
        JStep::Restarting,
        JStep::Probing,
        JStep::Upgraded,
        JStep::RollingBack,
        JStep::RolledBack,
    ];
    for broken in [false, true] {
        for step in steps {
            if !broken && matches!(step, JStep::RollingBack | JStep::RolledBack) {
                continue;
            }
            let root = tempfile::tempdir().unwrap();
            let calls = Calls::default();
            let host = installed(&calls, root.path(), &[&v1, &v2]);
            let new_app = id_of(&image_of(&v2, "omnileads"));
            let old_app = id_of(&image_of(&v1, "omnileads"));
            if broken {
                host.runtime
                    .broken_images
                    .lock()
                    .unwrap()
                    .insert(new_app.clone());
            }
            // nginx answers through uwsgi: its probe fails while omnileads runs the broken image.
            let nginx = v2
                .components
                .iter()
                .find(|c| c.name == "nginx")
                .and_then(|c| c.probe.as_ref())
                .unwrap()
                .describe();
            host.runtime
                .probe_needs
                .lock()
                .unwrap()
                .insert(nginx, vec!["omnileads.service".into()]);
            let mut d = day2();
            d.kill_after = Some(step);
            let e = apply(&v2, root.path(), &host, &d).unwrap_err();
            assert!(format!("{e:#}").contains("killed"), "{step:?}: {e:#}");
            let mark = calls.all().len();
            let s = apply(&v2, root.path(), &host, &day2()).unwrap();
            let case = format!("broken={broken} killed after {step:?}");
            if broken && step == JStep::RollingBack {
                // The rollback is finished, the new image is not tried again.
                let again = calls.all()[mark..]
                    .iter()
                    .filter(|c| *c == "restart omnileads.service")
                    .count();
                assert_eq!(again, 1, "{case}");
            }
            if broken && step == JStep::RolledBack {
                // The dump restored the database of the previous image: its migrations are not run
                // again on it; the static files (a volume the dump does not hold) are.
                let tasks = calls.all()[mark..]
                    .iter()
                    .filter(|c| c.starts_with("task "))
                    .cloned()
                    .collect::<Vec<_>>();
                assert_eq!(tasks, ["task django_commands"], "{case}");
            }
            let want = if broken {
                Status::Degraded
            } else {
                Status::Done
            };
            assert_eq!(s.status, want, "{case}: {:?} {:?}", s.errors, s.upgrades);
            let j = Journal::load(root.path()).unwrap().unwrap();
            assert!(j.done, "{case}: {j:?}");
            let running = host.services.running.lock().unwrap().clone();
            let expect = if broken { &old_app } else { &new_app };
            for (c, u) in [
                ("omnileads", "omnileads.service"),
                ("daphne", "daphne.service"),
                ("omlcron", "omlcron.service"),
            ] {
                assert_eq!(&running[u], expect, "{case}: {u}");
                assert_eq!(&s.upgrades[c].image_id, expect, "{case}: {c}");
                assert!(
                    s.components[c].probe.as_ref().is_none_or(|p| p.passed),
                    "{case}: {c}"
                );
            }
            assert_eq!(
                running["kamailio.service"],
                id_of(&image_of(&v2, "kamailio")),
                "{case}"
            );
            let present = host.images.present.lock().unwrap().clone();
            assert_eq!(&present[&image_of(&v2, "omnileads")], expect, "{case}");
            if broken {
                assert!(
                    calls.all().iter().any(|c| c.starts_with("restore ")),
                    "{case}"
                );
            }
        }
    }
}

#[test]
fn migrations_failing_on_the_new_omlapp_roll_it_back_with_the_dump_and_nothing_restarts() {
    let v1 = plan_of("");
    let v2 = plan_of(OMLAPP_2);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    host.runtime
        .failing_tasks
        .lock()
        .unwrap()
        .insert("django_migrations".into());
    let before = calls.all().len();
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    let all = calls.all()[before..].to_vec();
    // Healthy on the previous image: exit 3, with the reason.
    assert_eq!(
        s.status,
        Status::Degraded,
        "{:?} {:?}",
        s.errors,
        s.components
    );
    assert_eq!(s.tasks["django_migrations"].outcome, "rolled back");
    for c in ["omnileads", "daphne", "omlcron"] {
        let r = &s.upgrades[c];
        assert_eq!(r.outcome, "rolled back", "{c}");
        assert!(
            r.reason.as_deref().unwrap().contains("django_migrations"),
            "{r:?}"
        );
        assert_eq!(r.image_id, id_of(&image_of(&v1, "omnileads")));
    }
    // What the failed task blocked runs on as it was.
    for c in ["ami", "nginx"] {
        assert_eq!(
            s.components[c].state, "active",
            "{c}: {:?}",
            s.components[c]
        );
    }
    let dump = all.iter().position(|c| c.starts_with("dump ")).unwrap();
    let restore = all.iter().position(|c| c.starts_with("restore ")).unwrap();
    assert!(
        dump < index(&all, "task django_migrations") && restore > dump,
        "{all:?}"
    );
    // Its units never left the previous image: nothing restarted at all.
    assert!(restarts(&all).is_empty(), "{all:?}");
    // Converged: the next run does nothing more.
    host.runtime.failing_tasks.lock().unwrap().clear();
    let before = calls.all().len();
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert!(restarts(&calls.all()[before..]).is_empty());
    assert_eq!(s.status, Status::Degraded);
}

#[test]
fn a_maintenance_window_that_does_not_parse_is_a_config_error() {
    for (extra, key) in [
        ("maintenance_hours: \"2\"\n", "maintenance_hours"),
        ("maintenance_weekdays: mon,fry\n", "maintenance_weekdays"),
    ] {
        let e = Config::load(&Sources {
            file: Some(("config.yaml".into(), format!("{AIO}{extra}"))),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{e}").contains(key), "{e}");
    }
    let cfg = Config::load(&Sources {
        file: Some((
            "config.yaml".into(),
            format!("{AIO}maintenance_weekdays: sat-sun\nmaintenance_hours: \"22-04\"\n"),
        )),
        ..Default::default()
    })
    .unwrap();
    let s = cfg.settings();
    let w = Window::parse(
        s.maintenance_weekdays.as_deref(),
        s.maintenance_hours.as_deref(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(w.describe(), "sat,sun 22-04 UTC");
}

#[test]
fn a_new_image_that_passes_its_probe_but_restarts_by_itself_is_rolled_back() {
    let v1 = plan_of("");
    let v2 = plan_of(KAMAILIO_2);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    let new_kam = id_of(&image_of(&v2, "kamailio"));
    host.services
        .crashing_images
        .lock()
        .unwrap()
        .insert(new_kam);
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Degraded, "{:?}", s.errors);
    let k = &s.upgrades["kamailio"];
    assert_eq!(k.outcome, "rolled back");
    assert!(k.reason.as_deref().unwrap().contains("NRestarts"), "{k:?}");
    assert_eq!(
        host.services.running.lock().unwrap()["kamailio.service"],
        id_of(&image_of(&v1, "kamailio"))
    );
}

#[test]
fn when_the_previous_image_fails_too_the_component_is_failed_exit_1() {
    let v1 = plan_of("");
    let v2 = plan_of(KAMAILIO_2);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    for v in [&v1, &v2] {
        host.runtime
            .broken_images
            .lock()
            .unwrap()
            .insert(id_of(&image_of(v, "kamailio")));
    }
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert_eq!(
        s.status.code(),
        Code::Failed,
        "{:?}",
        s.components["kamailio"]
    );
    assert_eq!(s.components["kamailio"].state, "failed");
    let k = &s.upgrades["kamailio"];
    assert_eq!(k.outcome, "failed");
    assert!(
        k.reason
            .as_deref()
            .unwrap()
            .contains("the rollback failed too"),
        "{k:?}"
    );
}

#[test]
fn a_stopped_asterisk_carries_no_call_its_upgrade_does_not_wait() {
    let v1 = plan_of("");
    let v2 = plan_of(ASTERISK_2);
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2]);
    host.services
        .units
        .lock()
        .unwrap()
        .insert("asterisk.service".into(), "failed".into());
    host.runtime
        .call_counts
        .lock()
        .unwrap()
        .insert("oml-asterisk-server".into(), [1].into());
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Done, "{:?}", s.errors);
    assert_eq!(s.upgrades["asterisk"].outcome, "upgraded");
    assert_eq!(host.runtime.call_polls("oml-asterisk-server"), 0);
}

/// Exit 3 after a rollback lasts while the config names the rolled back reference, not longer: set
/// back to the image the host runs (or after an upgrade of another component) the host is done.
#[test]
fn after_a_rollback_the_reference_set_back_makes_the_host_done_again() {
    let v1 = plan_of("");
    let v2 = plan_of(&format!("{KAMAILIO_2}{OMLAPP_2}"));
    let v3 = plan_of(KAMAILIO_2);
    let v4 = plan_of(&format!("{KAMAILIO_2}{WEBSOCKETS_2}"));
    let root = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let host = installed(&calls, root.path(), &[&v1, &v2, &v3, &v4]);
    host.runtime
        .broken_images
        .lock()
        .unwrap()
        .insert(id_of(&image_of(&v2, "omnileads")));
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Degraded, "{:?}", s.errors);
    // The config still names the rolled back reference: degraded, every run.
    let s = apply(&v2, root.path(), &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Degraded, "{:?}", s.errors);
    // Set back to the image it runs: done, and still done on the next run; the record keeps its story.
    for _ in 0..2 {
        let s = apply(&v3, root.path(), &host, &day2()).unwrap();
        assert_eq!(s.status, Status::Done, "{:?} {:?}", s.errors, s.upgrades);
        let r = &s.upgrades["omnileads"];
        assert_eq!(r.outcome, "rolled back");
        assert_eq!(r.image_id, id_of(&image_of(&v1, "omnileads")));
    }
    // An upgrade of another component afterwards: exit 0 (everything asked is in effect).
    let s = apply(&v4, root.path(), &host, &day2()).unwrap();
    assert_eq!(s.status, Status::Done, "{:?} {:?}", s.errors, s.upgrades);
    assert_eq!(s.upgrades["websockets"].outcome, "upgraded");
}
