//! Backup and restore against a real PostgreSQL 15 (throwaway clusters; postgresql-15 is installed
//! with apt-get when missing), a directory destination and directory volumes: round trip with
//! verification, corrupt and incomplete backups refused with the host untouched, an omldeploytool
//! dump, a full disk, and kill -9 in the middle of a backup and of a restore.
mod backup_support;
use backup_support::*;
use omlboot::backup::dest::{dir::Dir, Destination};
use omlboot::backup::restore::{self, Refused, Request};
use omlboot::backup::seams::{Feed, Postgres, Scratch, Sink};
use omlboot::backup::{self as bk};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const NOW: u64 = 1_709_622_489; // 2024-03-05 07:08:09 UTC, Tuesday

fn req(source: &str, work: &Path, root: &Path, discard: bool) -> Request<'static> {
    Request {
        source: Box::leak(source.to_string().into_boxed_str()),
        discard_previous: discard,
        writers: writers(),
        work: work.to_path_buf(),
        root: root.to_path_buf(),
        now: NOW + 3600,
    }
}

#[test]
fn backup_verify_and_restore_round_trip() {
    let c = cluster();
    fill(&c.pg, 1000);
    let t = tempfile::tempdir().unwrap();
    let dest = Dir::new(t.path().join("dest"));
    let vols = volumes(&t.path().join("vols"));
    let done = bk::run(&c.pg, &vols, &dest, &spec(t.path().join("work")), NOW).unwrap();
    let v = done.verified.clone().unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((done.tables, done.rows), (3, 1007));
    assert_eq!(
        done.manifest,
        "acme/dow_2/acme-20240305T070809Z.manifest.json"
    );
    let listed = bk::list(&dest).unwrap();
    assert_eq!(listed.len(), 1);
    let m = &listed[0].manifest;
    assert!(m.is_verified());
    assert_eq!(m.tables["public.reportes_app_llamadalog"], 1000);
    assert!(m
        .streams
        .iter()
        .any(|s| s.name == "volumes/asterisk_conf.tar"));
    // Work files are gone.
    assert_eq!(std::fs::read_dir(t.path().join("work")).unwrap().count(), 0);

    // The database and files change after the backup.
    psql(&c.pg, "omnileads", "DELETE FROM reportes_app_llamadalog WHERE id > 10; INSERT INTO extra.notes VALUES ('c', NULL)");
    std::fs::write(
        t.path()
            .join("vols/asterisk_conf/custom/oml_extensions_custom.conf"),
        "changed",
    )
    .unwrap();
    let services = FakeServices::default();
    let r = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&dest),
        &req(&m.name, &t.path().join("work"), t.path(), false),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(r.checksummed);
    assert_eq!(rows(&c.pg, "reportes_app_llamadalog"), 1000);
    assert_eq!(rows(&c.pg, "extra.notes"), 2);
    assert_eq!(
        std::fs::read_to_string(
            t.path()
                .join("vols/asterisk_conf/custom/oml_extensions_custom.conf")
        )
        .unwrap(),
        "[from-custom]\nexten => 1,1,NoOp\n"
    );
    // The replaced files are kept too, in a copy of the volume.
    assert_eq!(r.previous_volumes.len(), 1, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(t.path().join(format!(
            "vols/{}/custom/oml_extensions_custom.conf",
            r.previous_volumes[0]
        )))
        .unwrap(),
        "changed"
    );
    // The replaced database is kept, with the changed data.
    let prev = r.previous.clone().unwrap();
    assert!(database_names(&c.pg).contains(&prev));
    assert_eq!(
        psql(&c.pg, &prev, "SELECT count(*) FROM reportes_app_llamadalog"),
        "10"
    );
    assert_eq!(
        *services.log.lock().unwrap(),
        vec![
            "stop omnileads.service asterisk.service",
            "start omnileads.service asterisk.service"
        ]
    );
    // The downloaded archive is not left in the work directory.
    assert_eq!(std::fs::read_dir(t.path().join("work")).unwrap().count(), 0);
    // Again with --discard-previous: no previous database left behind.
    let mut rq = req(&m.name, &t.path().join("work"), t.path(), true);
    rq.now += 60;
    let r2 = restore::restore(&c.pg, &vols, &services, Some(&dest), &rq)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(r2.previous.is_none());
    assert!(r2.previous_volumes.is_empty(), "{r2:?}");
    let kept: Vec<_> = std::fs::read_dir(t.path().join("vols"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("_previous_"))
        .collect();
    assert_eq!(
        kept, r.previous_volumes,
        "only the first restore's copy is left"
    );
    let dbs = database_names(&c.pg);
    assert!(!dbs.iter().any(|d| d.contains("_restore_")), "{dbs:?}");
    assert_eq!(
        dbs.iter().filter(|d| d.contains("_previous_")).count(),
        1,
        "{dbs:?}"
    );
}

#[test]
fn corrupt_or_incomplete_backups_are_refused_before_anything_is_touched() {
    let c = cluster();
    fill(&c.pg, 50);
    let t = tempfile::tempdir().unwrap();
    let dest = Dir::new(t.path().join("dest"));
    let vols = volumes(&t.path().join("vols"));
    let mut sp = spec(t.path().join("work"));
    sp.verify = false;
    let done = bk::run(&c.pg, &vols, &dest, &sp, NOW).unwrap();
    let archive = t
        .path()
        .join("dest")
        .join(done.manifest.replace(".manifest.json", ".tar.gz"));
    psql(
        &c.pg,
        "omnileads",
        "INSERT INTO extra.notes VALUES ('after', NULL)",
    );

    // One flipped byte in the archive.
    let good = std::fs::read(&archive).unwrap();
    let mut bad = good.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0x55;
    std::fs::write(&archive, &bad).unwrap();
    let services = FakeServices::default();
    let e = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&dest),
        &req(
            "acme-20240305T070809Z",
            &t.path().join("work"),
            t.path(),
            false,
        ),
    );
    let Err(Refused::Invalid(msg)) = e else {
        panic!("expected Invalid, got {e:?}")
    };
    assert!(msg.contains("checksum") || msg.contains("corrupt"), "{msg}");
    assert!(
        services.log.lock().unwrap().is_empty(),
        "units were touched"
    );
    assert_eq!(rows(&c.pg, "extra.notes"), 3, "database was touched");

    // A truncated archive (a local manifest path as the source).
    std::fs::write(&archive, &good[..good.len() - 100]).unwrap();
    let local_manifest = t.path().join("dest").join(&done.manifest);
    let e = restore::restore(
        &c.pg,
        &vols,
        &services,
        None,
        &req(
            local_manifest.to_str().unwrap(),
            &t.path().join("work"),
            t.path(),
            false,
        ),
    );
    assert!(matches!(e, Err(Refused::Invalid(_))), "{e:?}");

    // No manifest: the backup does not exist.
    std::fs::write(&archive, &good).unwrap();
    std::fs::remove_file(&local_manifest).unwrap();
    assert!(bk::list(&dest).unwrap().is_empty());
    let e = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&dest),
        &req(
            "acme-20240305T070809Z",
            &t.path().join("work"),
            t.path(),
            false,
        ),
    );
    assert!(matches!(e, Err(Refused::Invalid(_))), "{e:?}");
    let e = restore::restore(
        &c.pg,
        &vols,
        &services,
        None,
        &req(
            archive.to_str().unwrap(),
            &t.path().join("work"),
            t.path(),
            false,
        ),
    );
    let Err(Refused::Invalid(msg)) = e else {
        panic!("{e:?}")
    };
    assert!(msg.contains("incomplete"), "{msg}");
    assert!(services.log.lock().unwrap().is_empty());
    assert_eq!(rows(&c.pg, "extra.notes"), 3);
}

#[test]
fn omldeploytool_dump_is_accepted_and_garbage_is_not() {
    let c = cluster();
    fill(&c.pg, 20);
    let t = tempfile::tempdir().unwrap();
    let legacy_dir = t.path().join("dest/backup");
    std::fs::create_dir_all(&legacy_dir).unwrap();
    // What omldeploytool's init_pgsql_backup.sh makes: pg_dump -Fc -b into pgsql-backup-<epoch>.sql.
    let st = Command::new(format!("{BIN}/pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.pg.port.to_string(),
            "-U",
            "postgres",
            "-Fc",
            "-b",
            "-d",
            "omnileads",
            "-f",
        ])
        .arg(legacy_dir.join("pgsql-backup-1681319391.sql"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        legacy_dir.join("pgsql-backup-1681319392.sql"),
        "-- plain SQL, not custom format\nSELECT 1;\n",
    )
    .unwrap();
    psql(&c.pg, "omnileads", "TRUNCATE reportes_app_llamadalog");
    let dest = Dir::new(t.path().join("dest"));
    let vols = volumes(&t.path().join("vols"));
    let services = FakeServices::default();
    let e = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&dest),
        &req("1681319392", &t.path().join("work"), t.path(), false),
    );
    assert!(matches!(e, Err(Refused::Invalid(_))), "{e:?}");
    assert!(services.log.lock().unwrap().is_empty());
    // restore_file_timestamp style: just the epoch.
    let r = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&dest),
        &req("1681319391", &t.path().join("work"), t.path(), false),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!r.checksummed);
    assert!(r.notes.iter().any(|n| n.contains("no checksum")));
    assert_eq!(rows(&c.pg, "reportes_app_llamadalog"), 20);
}

#[test]
fn full_disk_leaves_no_listed_backup() {
    let c = cluster();
    // Random bytes do not compress: the archive is larger than the 1 MiB tmpfs.
    psql(&c.pg, "omnileads", "CREATE TABLE blob (b bytea); INSERT INTO blob SELECT decode(string_agg(lpad(to_hex((random()*255)::int), 2, '0'), ''), 'hex') FROM generate_series(1, 3000000)");
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs (the tests run as root)");
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(mnt.clone());
    let dest = Dir::new(&mnt);
    let vols = volumes(&t.path().join("vols"));
    let mut sp = spec(t.path().join("work"));
    sp.verify = false;
    let e = bk::run(&c.pg, &vols, &dest, &sp, NOW).unwrap_err();
    assert!(format!("{e:#}").contains("No space left"), "{e:#}");
    assert!(bk::list(&dest).unwrap().is_empty());
    assert!(dest.list().unwrap().is_empty(), "{:?}", dest.list());
    // The next run to a destination with room works.
    let ok = Dir::new(t.path().join("big"));
    bk::run(&c.pg, &vols, &ok, &sp, NOW).unwrap();
    assert_eq!(bk::list(&ok).unwrap().len(), 1);
}

/// A Postgres that stalls once its dump/load stream is written, so the test can kill -9 mid-way.
struct Stalling(omlboot::backup::pg::Pg);

impl Postgres for Stalling {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn database(&self) -> &str {
        self.0.database()
    }
    fn dump(&self, sink: Sink) -> anyhow::Result<()> {
        self.0.dump(&mut |r| {
            sink(r)?;
            println!("STALLING");
            std::thread::sleep(std::time::Duration::from_secs(120));
            Ok(())
        })
    }
    fn row_counts(&self, d: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        self.0.row_counts(d)
    }
    fn check_dump(&self, p: &Path) -> anyhow::Result<()> {
        self.0.check_dump(p)
    }
    fn databases(&self) -> anyhow::Result<Vec<String>> {
        self.0.databases()
    }
    fn load(&self, d: &str, feed: Feed) -> anyhow::Result<()> {
        self.0.load(d, &mut |w| {
            feed(w)?;
            w.flush()?;
            println!("STALLING");
            std::thread::sleep(std::time::Duration::from_secs(120));
            Ok(())
        })
    }
    fn switch(&self, s: &str, p: &str) -> anyhow::Result<()> {
        self.0.switch(s, p)
    }
    fn drop_database(&self, d: &str) -> anyhow::Result<()> {
        self.0.drop_database(d)
    }
    fn scratch(&self) -> anyhow::Result<Scratch> {
        self.0.scratch()
    }
}

fn helper_pg() -> omlboot::backup::pg::Pg {
    omlboot::backup::pg::Pg {
        client: omlboot::backup::pg::Client::Host { bin: BIN.into() },
        host: Some("127.0.0.1".into()),
        port: std::env::var("KILL_PORT").unwrap().parse().unwrap(),
        user: "postgres".into(),
        password: None,
        database: "omnileads".into(),
        maintenance_db: "postgres".into(),
        scratch: omlboot::backup::pg::ScratchKind::Cluster {
            bin: BIN.into(),
            run_as: "postgres".into(),
        },
    }
}

/// Run by `kill_9_*` in a child process (not on its own).
#[test]
#[ignore]
fn kill_helper() {
    let Ok(mode) = std::env::var("KILL_MODE") else {
        return;
    };
    let base = PathBuf::from(std::env::var("KILL_DIR").unwrap());
    let pg = Stalling(helper_pg());
    let vols = omlboot::backup::seams::DirVolumes {
        root: base.join("vols"),
    };
    let dest = Dir::new(base.join("dest"));
    if mode == "backup" {
        let mut sp = spec(base.join("work"));
        sp.verify = false;
        let _ = bk::run(&pg, &vols, &dest, &sp, NOW + 86_400);
    } else {
        let services = FakeServices::default();
        let _ = restore::restore(
            &pg,
            &vols,
            &services,
            Some(&dest),
            &req("acme-20240305T070809Z", &base.join("work"), &base, false),
        );
    }
}

/// Start `kill_helper` in `mode`, wait until it stalls mid-stream, kill -9 it.
fn kill_mid_way(mode: &str, port: u16, dir: &Path) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KILL_MODE", mode)
        .env("KILL_PORT", port.to_string())
        .env("KILL_DIR", dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut stalled = false;
    for line in BufReader::new(out).lines() {
        if line.unwrap().contains("STALLING") {
            stalled = true;
            break;
        }
    }
    assert!(stalled, "the helper did not reach the middle of the {mode}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

#[test]
fn kill_9_mid_backup_and_mid_restore() {
    let c = cluster();
    fill(&c.pg, 300);
    let t = tempfile::tempdir().unwrap();
    let dest = Dir::new(t.path().join("dest"));
    let vols = volumes(&t.path().join("vols"));
    let mut sp = spec(t.path().join("work"));
    sp.verify = false;
    bk::run(&c.pg, &vols, &dest, &sp, NOW).unwrap();

    // kill -9 while the second backup is being written: still exactly one listed backup.
    kill_mid_way("backup", c.pg.port, t.path());
    let listed = bk::list(&dest).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(dest.list().unwrap().len(), 2, "{:?}", dest.list());
    // The next run works (and cleans the killed run's work file).
    bk::run(&c.pg, &vols, &dest, &sp, NOW + 2 * 86_400).unwrap();
    assert_eq!(bk::list(&dest).unwrap().len(), 2);
    assert_eq!(std::fs::read_dir(t.path().join("work")).unwrap().count(), 0);

    // kill -9 while the dump is loading into the new database: the live data is the old data.
    psql(
        &c.pg,
        "omnileads",
        "INSERT INTO extra.notes VALUES ('new', NULL)",
    );
    kill_mid_way("restore", c.pg.port, t.path());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(rows(&c.pg, "extra.notes"), 3, "the live database changed");
    assert_eq!(rows(&c.pg, "reportes_app_llamadalog"), 300);
    let j = restore::load_journal(t.path()).unwrap();
    assert_eq!(j.step, "load");
    // Rerun: restored, and the killed run's staged database is gone.
    let services = FakeServices::default();
    let r = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&dest),
        &req(
            "acme-20240305T070809Z",
            &t.path().join("work"),
            t.path(),
            true,
        ),
    );
    r.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rows(&c.pg, "extra.notes"), 2);
    let dbs = database_names(&c.pg);
    assert!(!dbs.iter().any(|d| d.contains("_restore_")), "{dbs:?}");
}

#[test]
fn retention_prunes_on_the_destination() {
    let c = cluster();
    fill(&c.pg, 5);
    let t = tempfile::tempdir().unwrap();
    let dest = Dir::new(t.path().join("dest"));
    let vols = volumes(&t.path().join("vols"));
    let mut sp = spec(t.path().join("work"));
    sp.verify = false;
    // An archive whose manifest never arrived (killed between the uploads), older than the backups.
    let orphan = t
        .path()
        .join("dest/acme/dow_5/acme-20240301T000000Z.tar.gz");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, "half").unwrap();
    sp.retention = Some(bk::retention::Policy {
        daily: 2,
        weekly: 0,
        monthly: 0,
    });
    for d in 0..4 {
        bk::run(&c.pg, &vols, &dest, &sp, NOW + d * 86_400).unwrap();
    }
    let names: Vec<String> = bk::list(&dest)
        .unwrap()
        .into_iter()
        .map(|l| l.manifest.name)
        .collect();
    assert_eq!(
        names,
        vec!["acme-20240308T070809Z", "acme-20240307T070809Z"]
    );
    assert_eq!(dest.list().unwrap().len(), 4);
}

/// `cargo test --release --test backup_pg bench -- --ignored --nocapture`: backup + verify time and
/// size for ~400k rows, and a restore.
#[test]
#[ignore]
fn bench_400k_rows() {
    let c = cluster();
    fill(&c.pg, 400_000);
    let t = tempfile::tempdir().unwrap();
    let dest = Dir::new(t.path().join("dest"));
    let vols = volumes(&t.path().join("vols"));
    let mut sp = spec(t.path().join("work"));
    sp.chunk = omlboot::backup::archive::CHUNK;
    let done = bk::run(&c.pg, &vols, &dest, &sp, NOW).unwrap();
    let v = done.verified.clone().unwrap();
    assert!(v.ok);
    let services = FakeServices::default();
    let r = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&dest),
        &req(&done.name, &t.path().join("work"), t.path(), true),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    println!(
        "BENCH rows={} archive={} bytes backup_total={} ms (of which verify {} ms) restore={} ms",
        done.rows, done.size, done.duration_ms, v.duration_ms, r.duration_ms
    );
}
