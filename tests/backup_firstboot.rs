//! Restore at first boot (`restore_file_timestamp`) through the code path `omlboot run` uses
//! ([`omlboot::backup::firstboot::restore_once`]) with a real PostgreSQL 15: host A's backup
//! restored on a "new host" (a fresh cluster) once per instance, units started again and probed;
//! a corrupt or missing source refused with the fresh database untouched; failed probes checked
//! again by the next run without a second restore. Then the catalog's `after_restore` tasks
//! (migrations, static files, admin reset; the engine on fakes) run again on the restored database,
//! once, also when a run dies between the restore and that re-run; `apply` never re-runs them.
mod backup_support;
mod plan_support;
use backup_support::*;
use omlboot::apply::engine::{self, Options};
use omlboot::apply::fake::{self, Calls, FakeHost};
use omlboot::apply::state::{already_provisioned, State, Status};
use omlboot::backup::dest::dir::Dir;
use omlboot::backup::firstboot::{pending, rerun_tasks, restore_once, Outcome, Spec};
use omlboot::backup::record::Record;
use omlboot::backup::restore::Refused;
use omlboot::backup::{self as bk};
use plan_support::AIO;
use std::cell::RefCell;
use std::path::Path;

const NOW: u64 = 1_709_622_489;

fn spec<'a>(source: &'a str, instance: &'a str, host: &Path) -> Spec<'a> {
    Spec {
        source,
        instance,
        writers: writers(),
        work: host.join("work"),
        root: host.to_path_buf(),
        now: NOW + 86_400,
    }
}

/// A fresh host's database: what apply's migrations leave, with a marker row.
fn fresh(c: &Cluster) {
    psql(
        &c.pg,
        "omnileads",
        "CREATE TABLE fresh_marker (k text); INSERT INTO fresh_marker VALUES ('new host')",
    );
}

/// Host A with 2000 calls, backed up (verified) to a directory destination.
fn host_a(t: &Path) -> (Cluster, Dir, String) {
    let a = cluster();
    fill(&a.pg, 2000);
    let dest = Dir::new(t.join("dest"));
    let vols = volumes(&t.join("vols-a"));
    let done = bk::run(
        &a.pg,
        &vols,
        &dest,
        &backup_support::spec(t.join("work-a")),
        NOW,
    )
    .unwrap();
    assert!(done.verified.unwrap().ok);
    (a, dest, done.name)
}

#[test]
fn a_new_host_restores_host_a_once_per_instance_and_probes_its_units() {
    let t = tempfile::tempdir().unwrap();
    let (_a, dest, name) = host_a(t.path());
    // Host B: provisioned (fresh database), first boot with restore_file_timestamp = A's backup.
    let b = cluster();
    fresh(&b);
    let host = t.path().join("host-b");
    std::fs::create_dir_all(host.join("vols")).unwrap();
    let vols = omlboot::backup::seams::DirVolumes {
        root: host.join("vols"),
    };
    let services = FakeServices::default();
    let probed = RefCell::new(Vec::new());
    let check = |units: &[String]| {
        probed.borrow_mut().push(units.to_vec());
        Ok(())
    };
    let out = restore_once(
        &b.pg,
        &vols,
        &services,
        Some(&dest),
        &spec(&name, "i-host-b", &host),
        &check,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let Outcome::Restored(r) = out else {
        panic!("{out:?}")
    };
    assert!(r.checksummed);
    assert_eq!(rows(&b.pg, "reportes_app_llamadalog"), 2000);
    assert!(host
        .join("vols/asterisk_conf/custom/oml_extensions_custom.conf")
        .is_file());
    // The fresh database is kept, not destroyed.
    let previous = r.previous.clone().expect("fresh database kept");
    assert!(database_names(&b.pg).contains(&previous));
    assert_eq!(
        psql(&b.pg, &previous, "SELECT k FROM fresh_marker"),
        "new host"
    );
    // Units stopped, started again, then probed.
    assert_eq!(
        *services.log.lock().unwrap(),
        vec![
            "stop omnileads.service asterisk.service",
            "start omnileads.service asterisk.service"
        ]
    );
    assert_eq!(*probed.borrow(), vec![writers()]);
    let rec = Record::load(&host).unwrap().first_boot.unwrap();
    assert_eq!(
        (rec.instance.as_str(), rec.source.as_str()),
        ("i-host-b", name.as_str())
    );
    assert!(rec.probes_passed);

    // A re-run (reboot, second `run`) on the same instance never restores again.
    psql(
        &b.pg,
        "omnileads",
        "INSERT INTO extra.notes VALUES ('after', NULL)",
    );
    let out = restore_once(
        &b.pg,
        &vols,
        &services,
        Some(&dest),
        &spec(&name, "i-host-b", &host),
        &check,
    )
    .unwrap();
    assert!(matches!(out, Outcome::AlreadyDone(_)), "{out:?}");
    assert_eq!(services.log.lock().unwrap().len(), 2);
    assert_eq!(rows(&b.pg, "extra.notes"), 3);
}

#[test]
fn a_corrupt_or_missing_source_is_refused_and_the_fresh_database_is_untouched() {
    let t = tempfile::tempdir().unwrap();
    let (_a, dest, name) = host_a(t.path());
    let b = cluster();
    fresh(&b);
    let host = t.path().join("host-b");
    std::fs::create_dir_all(&host).unwrap();
    let vols = volumes(&host.join("vols"));
    let services = FakeServices::default();
    let check = |_: &[String]| -> anyhow::Result<()> { panic!("no probe without a restore") };
    let before = database_names(&b.pg);

    // Missing.
    let e = restore_once(
        &b.pg,
        &vols,
        &services,
        Some(&dest),
        &spec("acme-20200101T000000Z", "i-host-b", &host),
        &check,
    )
    .unwrap_err();
    let Refused::Invalid(m) = e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("restore_file_timestamp acme-20200101T000000Z"),
        "{m}"
    );
    assert!(m.contains("no such backup"), "{m}");
    assert!(m.contains("fresh database was not touched"), "{m}");

    // Corrupt: one byte of the archive flipped on the destination.
    let archive = bk::list(&dest).unwrap()[0].archive_key.clone();
    let p = t.path().join("dest").join(&archive);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&p, bytes).unwrap();
    let e = restore_once(
        &b.pg,
        &vols,
        &services,
        Some(&dest),
        &spec(&name, "i-host-b", &host),
        &check,
    )
    .unwrap_err();
    assert!(matches!(e, Refused::Invalid(_)), "{e:?}");
    // Nothing touched: no unit stopped, same databases, the fresh data there, nothing recorded.
    assert!(services.log.lock().unwrap().is_empty());
    assert_eq!(database_names(&b.pg), before);
    assert_eq!(
        psql(&b.pg, "omnileads", "SELECT k FROM fresh_marker"),
        "new host"
    );
    assert!(Record::load(&host).unwrap().first_boot.is_none());
}

#[test]
fn failed_probes_fail_the_run_and_the_next_run_probes_again_without_restoring() {
    let t = tempfile::tempdir().unwrap();
    let (_a, dest, name) = host_a(t.path());
    let b = cluster();
    fresh(&b);
    let host = t.path().join("host-b");
    std::fs::create_dir_all(&host).unwrap();
    let vols = volumes(&host.join("vols"));
    let services = FakeServices::default();
    let failing = |_: &[String]| -> anyhow::Result<()> {
        anyhow::bail!("omnileads: http 127.0.0.1:8099/: 502")
    };
    let e = restore_once(
        &b.pg,
        &vols,
        &services,
        Some(&dest),
        &spec(&name, "i-host-b", &host),
        &failing,
    )
    .unwrap_err();
    let Refused::Failed(e) = e else {
        panic!("{e:?}")
    };
    let m = format!("{e:#}");
    assert!(m.contains("probes fail") && m.contains("502"), "{m}");
    let rec = Record::load(&host).unwrap().first_boot.unwrap();
    assert!(!rec.probes_passed);
    assert_eq!(rows(&b.pg, "reportes_app_llamadalog"), 2000);

    let probed = RefCell::new(0);
    let ok = |_: &[String]| {
        *probed.borrow_mut() += 1;
        Ok(())
    };
    let out = restore_once(
        &b.pg,
        &vols,
        &services,
        Some(&dest),
        &spec(&name, "i-host-b", &host),
        &ok,
    )
    .unwrap();
    assert!(
        matches!(out, Outcome::AlreadyDone(ref f) if f.probes_passed),
        "{out:?}"
    );
    assert_eq!(*probed.borrow(), 1);
    // Still one stop/start pair: no second restore.
    assert_eq!(services.log.lock().unwrap().len(), 2);
}

const AGAIN: [&str; 3] = ["django_migrations", "django_commands", "admin_password"];

/// Host B for `run`: the engine on fakes (an aio plan), its restore on a real PostgreSQL.
struct HostB {
    pg: omlboot::backup::pg::Pg,
    dest: Dir,
    source: String,
    root: std::path::PathBuf,
    vols: omlboot::backup::seams::DirVolumes,
    services: FakeServices,
    plan: omlboot::plan::Plan,
    calls: Calls,
    fakes: FakeHost,
}

const INSTANCE: &str = "i-host-b";

impl HostB {
    fn converge(&self) -> State {
        let opts = Options {
            target: omlboot::target::Target::Offline(self.root.clone()),
            family: omlboot::facts::os::PkgFamily::Apt,
            skip_packages: true,
            image_bundle: None,
            images: Default::default(),
            packages: Default::default(),
            start_deadline: std::time::Duration::from_secs(5),
            probe_interval: std::time::Duration::from_secs(2),
            instance_id: INSTANCE.into(),
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(engine::apply_on(&self.plan, &opts, &self.fakes))
            .unwrap()
    }

    /// `omlboot apply` (`run: false`) or `omlboot run`, sequenced as src/cmd/apply.rs `converge`
    /// does: the tasks the fakes ran. `die_after_restore`: killed between the restore and the re-run.
    fn omlboot(&self, run: bool, die_after_restore: bool) -> Vec<String> {
        let before = self.calls.all().len();
        let owed = pending(run, Some(&self.source), &self.root, INSTANCE).unwrap();
        if run && !owed && already_provisioned(&self.root, INSTANCE).unwrap() {
            return vec![];
        }
        let state = self.converge();
        assert_eq!(state.status, Status::Done, "{:?}", state.errors);
        if owed {
            let spec = spec(&self.source, INSTANCE, &self.root);
            restore_once(
                &self.pg,
                &self.vols,
                &self.services,
                Some(&self.dest),
                &spec,
                &|_| Ok(()),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
            if !die_after_restore {
                let tasks: Vec<String> = self
                    .plan
                    .tasks()
                    .filter(|t| t.after_restore)
                    .map(|t| t.name.clone())
                    .collect();
                rerun_tasks(&self.root, INSTANCE, &tasks, || Ok(self.converge())).unwrap();
            }
        }
        self.calls.all()[before..]
            .iter()
            .filter_map(|c| c.strip_prefix("task "))
            .map(str::to_string)
            .collect()
    }

    fn restores(&self) -> usize {
        self.services
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("stop "))
            .count()
    }
}

fn host_b(t: &Path) -> (Cluster, Cluster, HostB) {
    let (a, dest, source) = host_a(t);
    let b = cluster();
    fresh(&b);
    let root = t.join("host-b");
    std::fs::create_dir_all(root.join("vols")).unwrap();
    let plan = plan_support::plan_of(AIO);
    let registry = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            omlboot::plan::Step::Image { reference, .. } => {
                Some((reference.clone(), format!("id-{}", reference.len())))
            }
            _ => None,
        })
        .collect();
    let calls = Calls::default();
    let fakes = fake::host(&calls, registry, &[]);
    let h = HostB {
        pg: b.pg.clone(),
        dest,
        source,
        vols: omlboot::backup::seams::DirVolumes {
            root: root.join("vols"),
        },
        root,
        services: FakeServices::default(),
        plan,
        calls,
        fakes,
    };
    (a, b, h)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn again() -> Vec<String> {
    sorted(AGAIN.iter().map(|s| s.to_string()).collect())
}

#[test]
fn after_the_restore_the_tasks_that_wrote_the_database_run_again_on_it_once() {
    let t = tempfile::tempdir().unwrap();
    let (_a, b, h) = host_b(t.path());
    // First boot: every task on the fresh database, the restore, then the after_restore ones again.
    let ran = h.omlboot(true, false);
    assert_eq!(h.restores(), 1);
    assert_eq!(rows(&b.pg, "reportes_app_llamadalog"), 2000);
    let count = |t: &str| ran.iter().filter(|r| *r == t).count();
    for t in AGAIN {
        assert_eq!(count(t), 2, "{t}: {ran:?}");
    }
    assert_eq!(count("minio_bucket_user"), 1, "{ran:?}");
    let rec = Record::load(&h.root).unwrap().first_boot.unwrap();
    assert!(rec.probes_passed && rec.tasks_rerun, "{rec:?}");
    let state = State::load(&h.root).unwrap().unwrap();
    assert_eq!(state.status, Status::Done);
    assert_eq!(state.tasks["admin_password"].successes, 1);
    assert!(!state.notices.is_empty(), "the admin/admin notice");

    // A reboot (`run` again) does nothing; `apply` converges without re-running them.
    assert!(h.omlboot(true, false).is_empty());
    assert!(h.omlboot(false, false).is_empty());
    assert_eq!(h.restores(), 1);
}

#[test]
fn a_run_killed_between_the_restore_and_the_rerun_reruns_the_tasks_next_time_without_restoring() {
    let t = tempfile::tempdir().unwrap();
    let (_a, b, h) = host_b(t.path());
    h.omlboot(true, true);
    assert_eq!(h.restores(), 1);
    let rec = Record::load(&h.root).unwrap().first_boot.unwrap();
    assert!(rec.probes_passed && !rec.tasks_rerun, "{rec:?}");

    // `apply` before the next boot: not its job (only `run` restores and re-runs).
    assert!(h.omlboot(false, false).is_empty());
    assert!(pending(true, Some(&h.source), &h.root, INSTANCE).unwrap());
    assert!(!pending(false, Some(&h.source), &h.root, INSTANCE).unwrap());

    // The next `run`: the tasks again, no second restore, the restored data untouched.
    psql(
        &b.pg,
        "omnileads",
        "INSERT INTO extra.notes VALUES ('after', NULL)",
    );
    assert_eq!(sorted(h.omlboot(true, false)), again());
    assert_eq!(h.restores(), 1);
    assert_eq!(rows(&b.pg, "extra.notes"), 3);
    assert!(
        Record::load(&h.root)
            .unwrap()
            .first_boot
            .unwrap()
            .tasks_rerun
    );
    assert!(h.omlboot(true, false).is_empty());
}

#[test]
fn a_rerun_that_fails_is_owed_until_an_apply_after_it_reaches_done() {
    let t = tempfile::tempdir().unwrap();
    let (_a, _b, h) = host_b(t.path());
    h.omlboot(true, true);
    let tasks: Vec<String> = AGAIN.iter().map(|s| s.to_string()).collect();
    h.fakes
        .runtime
        .failing_tasks
        .lock()
        .unwrap()
        .insert("django_migrations".into());
    let s = rerun_tasks(&h.root, INSTANCE, &tasks, || Ok(h.converge()))
        .unwrap()
        .expect("owed");
    assert_eq!(s.status, Status::Failed);
    assert!(
        !Record::load(&h.root)
            .unwrap()
            .first_boot
            .unwrap()
            .tasks_rerun
    );
    // A run killed inside the re-run's apply: the same, the records already forgotten.
    let e = rerun_tasks(&h.root, INSTANCE, &tasks, || anyhow::bail!("killed")).unwrap_err();
    assert!(e.to_string().contains("killed"));
    assert!(pending(true, Some(&h.source), &h.root, INSTANCE).unwrap());
    h.fakes.runtime.failing_tasks.lock().unwrap().clear();
    // The next `run`: its first apply runs them (forgotten), the re-run once more (twice is harmless).
    let ran = h.omlboot(true, false);
    for t in AGAIN {
        assert_eq!(ran.iter().filter(|r| *r == t).count(), 2, "{t}: {ran:?}");
    }
    assert_eq!(h.restores(), 1);
    assert!(
        rerun_tasks(&h.root, INSTANCE, &tasks, || panic!("not owed"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_record_from_before_the_rerun_existed_owes_none() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    std::fs::create_dir_all(root.join("var/lib/omlboot")).unwrap();
    std::fs::write(
        Record::path(root),
        r#"{"last_attempt":null,"last_success":null,"first_boot":{"instance":"i-1","source":"s","restored_at":1,"probes_passed":true}}"#,
    )
    .unwrap();
    assert!(Record::load(root).unwrap().first_boot.unwrap().tasks_rerun);
    assert!(!pending(true, Some("s"), root, "i-1").unwrap());
    // Another instance (a clone) is owed its own restore.
    assert!(pending(true, Some("s"), root, "i-2").unwrap());
}
