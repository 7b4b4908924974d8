//! Restore at first boot (`restore_file_timestamp`) through the code path `omlboot run` uses
//! ([`omlboot::backup::firstboot::restore_once`]) with a real PostgreSQL 15: host A's backup
//! restored on a "new host" (a fresh cluster) once per instance, units started again and probed;
//! a corrupt or missing source refused with the fresh database untouched; failed probes checked
//! again by the next run without a second restore.
mod backup_support;
use backup_support::*;
use omlboot::backup::dest::dir::Dir;
use omlboot::backup::firstboot::{restore_once, Outcome, Spec};
use omlboot::backup::record::Record;
use omlboot::backup::restore::Refused;
use omlboot::backup::{self as bk};
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
