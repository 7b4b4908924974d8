//! Backup, verification and restore through omlboot's PODMAN paths (issue 12), with real podman and the real
//! PostgreSQL stand-in image (`localhost:5000/library/postgres:e2e`, Debian's PostgreSQL behind
//! tests/e2e/standins/server-entrypoint.sh, POSTGRES_USER/PASSWORD/DB and POSTGRES_HOST_AUTH_METHOD like the
//! official image), in a network namespace of the test's own (the test re-executes itself under `unshare --net`):
//!
//! * the database runs as postgresql.service.tera runs it: container `oml-postgresql-server` (units/catalog.yaml),
//!   `--network=host`, volume `oml_postgres`, `postgres -c listen_addresses=127.0.0.1`; the Asterisk files are the
//!   podman volume `asterisk_conf` (catalog `backup_volumes`); rows are written with psql in the container;
//! * the real `omlboot backup` binary (role aio, `backup_destination` a local directory, `--root` a scratch tree)
//!   dumps with `podman exec oml-postgresql-server pg_dump`, exports the volume with `podman volume export`, and
//!   verifies in a throwaway `podman run -d` container of the same image (asserted from `podman events`: started,
//!   then gone); archive + manifest on the destination, checksum and row counts asserted;
//! * the same with `postgres_host` set: pg_dump in a one-shot `podman run --rm --network=host` of the image;
//! * rows changed and deleted, a file of the volume changed; restore through `backup::restore::restore` (what
//!   `omlboot restore` calls) with the real [`Pg`] (podman exec) and [`PodmanVolumes`]; the units it stops and
//!   starts go through a TEST DOUBLE of the `Services` seam ([`PodmanUnits`]): `systemctl` needs systemd as PID 1,
//!   which this host does not have, so the double `podman stop`s / `podman start`s the unit's real container
//!   (a writer, `oml-uwsgi-server`, holding a session on the database) and records what it saw;
//!   rows back as backed up, the replaced database kept as `omnileads_previous_<tag>` with the changed rows;
//! * the real `omlboot restore` binary end to end with role data (no unit on a data host writes to the database,
//!   so it needs no systemctl);
//! * a corrupted archive: `omlboot restore` (role aio) exits 2 before stopping anything, data untouched.
//!
//! Prints backup / verify / restore seconds and the archive size.
//!
//! Needs root, podman, runc (crun cannot run containers on this cgroup v1/hybrid host; `apt-get install runc`),
//! unshare, iproute2, and the stand-in bundle (tests/e2e/standins/build-standins.sh, run by the test, cached).
//! Podman is configured through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF (runc, `nofile=4096:4096`
//! `nproc=4096:4096` ulimits, storage in the e2e cache), so the `podman` omlboot runs is the plain one.
//! Run: `OMLBOOT_E2E_CACHE=/work/e2e-cache cargo test --test backup_podman -- --ignored --nocapture`
//! (~1 min warm: 44 s here, on 2 shared cores).

use omlboot::backup::pg::{Client, Pg, ScratchKind};
use omlboot::backup::restore::{self, Request};
use omlboot::backup::seams::{PodmanVolumes, Services};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const IMG: &str = "localhost:5000/library/postgres:e2e";
/// units/catalog.yaml: postgresql's container, and the container of omnileads.service (writes_db).
const PG_CTR: &str = "oml-postgresql-server";
const WRITER_UNIT: &str = "omnileads.service";
const WRITER_CTR: &str = "oml-uwsgi-server";
const TEST: &str = "backup_verify_restore_with_real_podman";
const CALLS: u64 = 50_000;

fn sh_in(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("set -e; {cmd}"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[track_caller]
fn ok(cmd: &str) -> String {
    let o = sh_in(cmd);
    assert!(
        o.status.success(),
        "{cmd}\nexit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn wait(cmd: &str, want: &str, secs: u64) {
    let t = Instant::now();
    loop {
        let o = sh_in(cmd);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if o.status.success() && out.contains(want) {
            return;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            panic!("{cmd}: no {want:?} after {secs}s; last output:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// psql in the postgres container (local socket, as omlboot's podman exec does).
#[track_caller]
fn psql(db: &str, sql: &str) -> String {
    let o = Command::new("podman")
        .args(["exec", PG_CTR, "psql", "-X", "-q", "-A", "-t"])
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "omnileads",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn databases() -> Vec<String> {
    psql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
        .lines()
        .map(str::to_string)
        .collect()
}

fn running() -> Vec<String> {
    ok("podman ps --format '{{.Names}}'")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The `Services` seam's test double: the unit's real container is stopped and started with podman (no
/// systemd as PID 1 here); what was running and which databases existed is recorded at each call.
#[derive(Default)]
struct PodmanUnits {
    log: Mutex<Vec<String>>,
}

fn container_of(unit: &str) -> &'static str {
    assert_eq!(unit, WRITER_UNIT, "only {WRITER_UNIT} runs here");
    WRITER_CTR
}

impl Services for PodmanUnits {
    fn stop(&self, units: &[String]) -> anyhow::Result<()> {
        for u in units {
            ok(&format!("podman stop -t 2 {}", container_of(u)));
        }
        self.log.lock().unwrap().push(format!(
            "stop {}: running [{}], databases [{}]",
            units.join(" "),
            running().join(" "),
            databases().join(" ")
        ));
        Ok(())
    }
    fn start(&self, units: &[String]) -> anyhow::Result<()> {
        self.log.lock().unwrap().push(format!(
            "start {}: databases [{}]",
            units.join(" "),
            databases().join(" ")
        ));
        for u in units {
            ok(&format!("podman start {}", container_of(u)));
        }
        Ok(())
    }
}

fn omlboot(w: &Path, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_omlboot"))
        .args(args)
        .args(["--root", w.join("root").to_str().unwrap()])
        .args(["--set", "postgres_password=pg-secret"])
        .args(["--set", &format!("postgres_img={IMG}")])
        .args(["--set", "tenant_id=acme"])
        .args([
            "--set",
            &format!("backup_work_dir={}", w.join("work").display()),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (o, t.elapsed())
}

#[track_caller]
fn json_of(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "omlboot: exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn count(table: &str) -> u64 {
    psql("omnileads", &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

#[test]
#[ignore = "root + podman + runc + a network namespace; ~1 min warm: cargo test --test backup_podman -- --ignored"]
fn backup_verify_restore_with_real_podman() {
    if std::env::var_os("BACKUP_PODMAN_INNER").is_some() {
        inner(Path::new(&std::env::var("BACKUP_PODMAN_WORK").unwrap()));
    } else {
        outer();
    }
}

/// Stand-ins, podman's configuration, then this test again in a new network namespace.
fn outer() {
    let t0 = Instant::now();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = std::env::var_os("OMLBOOT_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("tests/e2e/.cache"));
    std::fs::create_dir_all(&cache).unwrap();
    for tool in ["podman", "unshare", "ip", "tar", "sha256sum"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "backup_podman needs {tool}");
    }
    let runc = Path::new("/usr/bin/runc").exists() || Path::new("/usr/sbin/runc").exists();
    if !runc {
        eprintln!("backup_podman: no runc; if containers fail with 'cgroups in hybrid mode not supported', apt-get install runc");
    }
    // Stand-ins.
    let t = Instant::now();
    let o = Command::new(repo.join("tests/e2e/standins/build-standins.sh"))
        .env("OMLBOOT_E2E_CACHE", &cache)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "build-standins.sh failed");
    let out = PathBuf::from(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    eprintln!("stand-ins: {} ({:.0?})", out.display(), t.elapsed());

    let w = cache.join(format!(
        "host-test-backup-podman-run-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(w.join("root/run")).unwrap();
    ok(&format!(
        "tar -xf {} -C {} archives/postgres.oci.tar",
        out.join("bundle.tar").display(),
        w.display()
    ));
    let runroot = format!("/run/backup-podman-test-{}", std::process::id());
    std::fs::write(
        w.join("containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n\
             [engine]\n{}events_logger = \"file\"\nevents_logfile_path = \"{}\"\n",
            if runc { "runtime = \"runc\"\n" } else { "" },
            w.join("events.log").display()
        ),
    )
    .unwrap();
    std::fs::write(
        w.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{runroot}\"\n",
            cache.join("host-test-backup-podman").display()
        ),
    )
    .unwrap();
    let st = Command::new("unshare")
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BACKUP_PODMAN_INNER", "1")
        .env("BACKUP_PODMAN_WORK", &w)
        .env("CONTAINERS_CONF", w.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", w.join("storage.conf"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&w);
    let _ = std::fs::remove_dir_all(&runroot);
    assert!(st.success(), "the test in its network namespace failed");
    eprintln!("backup_podman: {:.0?} in all", t0.elapsed());
}

/// Removes every container and volume of the test's podman storage (inside the namespace).
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = sh_in("podman rm -fa -t 1 >/dev/null 2>&1; podman volume rm -fa >/dev/null 2>&1");
    }
}

fn inner(w: &Path) {
    let wd = w.display();
    let t = Instant::now();
    ok(&format!("podman load -q -i {wd}/archives/postgres.oci.tar"));
    ok("podman rm -fa -t 1; podman volume rm -fa");
    let _cleanup = Cleanup;
    eprintln!("image loaded ({:.0?})", t.elapsed());

    // The database, as postgresql.service.tera starts it.
    std::fs::write(
        w.join("postgres.env"),
        "TZ=UTC\nPOSTGRES_USER=omnileads\nPOSTGRES_PASSWORD=pg-secret\nPOSTGRES_DB=omnileads\n",
    )
    .unwrap();
    ok(&format!(
        "podman run --replace --detach --rm --network=host --name={PG_CTR} --env-file={wd}/postgres.env \
         --volume=oml_postgres:/var/lib/postgresql/data {IMG} postgres -c listen_addresses=127.0.0.1"
    ));
    // omlboot's probe.
    wait(
        &format!("podman exec {PG_CTR} pg_isready -h 127.0.0.1 -p 5432 -U omnileads"),
        "accepting connections",
        90,
    );
    psql(
        "omnileads",
        &format!(
            "CREATE TABLE ominicontacto_app_campana (id serial primary key, nombre text not null);
             CREATE TABLE reportes_app_llamadalog (id bigserial primary key, campana_id int references ominicontacto_app_campana(id), event text, ts timestamptz default now());
             CREATE SCHEMA extra; CREATE TABLE extra.notes (k text primary key, v bytea);
             INSERT INTO ominicontacto_app_campana (nombre) SELECT 'campana ' || g FROM generate_series(1, 5) g;
             INSERT INTO reportes_app_llamadalog (campana_id, event) SELECT 1 + g % 5, md5(g::text) FROM generate_series(1, {CALLS}) g;
             INSERT INTO extra.notes VALUES ('a', 'x'), ('b', NULL);"
        ),
    );
    let fingerprint = || {
        psql(
            "omnileads",
            "SELECT md5(string_agg(id || nombre, ',' ORDER BY id)) FROM ominicontacto_app_campana",
        )
    };
    let backed_up = fingerprint();
    // The Asterisk files: the asterisk_conf volume.
    ok(&format!(
        "mkdir -p {wd}/conf/custom {wd}/conf/override && printf '[from-custom]\\nexten => 1,1,NoOp\\n' > {wd}/conf/custom/oml_extensions_custom.conf \
         && printf '; override\\n' > {wd}/conf/override/pjsip.conf && tar -C {wd}/conf -cf {wd}/conf.tar . \
         && podman volume create asterisk_conf >/dev/null && podman volume import asterisk_conf {wd}/conf.tar"
    ));
    // A unit that writes to the database: a session held open on it.
    ok(&format!(
        "podman run -d --name {WRITER_CTR} --network=host -e PGPASSWORD=pg-secret {IMG} \
         psql -h 127.0.0.1 -U omnileads -d omnileads -c 'SELECT pg_sleep(3600)'"
    ));
    wait(
        &format!("podman exec {PG_CTR} psql -U omnileads -d omnileads -tAc \"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()\""),
        "1",
        30,
    );

    // 1. `omlboot backup`: podman exec pg_dump, podman volume export, verification in a throwaway container.
    let dest = w.join("dest");
    let since = ok("date -u +%Y-%m-%dT%H:%M:%SZ").trim().to_string();
    let (o, backup_time) = omlboot(
        w,
        &[
            "backup",
            "--format",
            "json",
            "--role",
            "aio",
            "--set",
            &format!("backup_destination={}", dest.display()),
        ],
    );
    let done = json_of(&o);
    eprintln!("omlboot backup: {done}");
    let name = done["name"].as_str().unwrap().to_string();
    assert_eq!(done["verified"]["ok"], true, "{done}");
    assert_eq!(done["tables"], 3);
    assert_eq!(done["rows"], CALLS + 5 + 2);
    let manifest_path = dest.join(format!("acme/{name}.manifest.json"));
    let archive_path = dest.join(format!("acme/{name}.tar.gz"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let size = std::fs::metadata(&archive_path).unwrap().len();
    assert_eq!(manifest["archive"]["size"], size);
    let sha = ok(&format!("sha256sum {}", archive_path.display()));
    assert_eq!(
        manifest["archive"]["sha256"].as_str().unwrap(),
        sha.split_whitespace().next().unwrap()
    );
    assert_eq!(
        manifest["tables"]["public.reportes_app_llamadalog"], CALLS,
        "{manifest}"
    );
    assert_eq!(manifest["images"]["postgres_img"], IMG);
    let streams: Vec<&str> = manifest["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        streams,
        ["db/omnileads.dump", "volumes/asterisk_conf.tar"],
        "{manifest}"
    );
    let v = &manifest["verified"];
    assert!(
        v["ok"] == true && v["tables"] == 3 && v["rows"] == CALLS + 7,
        "{v}"
    );
    // The verification ran in a throwaway container of the same image, and that container is gone.
    let events = ok(&format!(
        "podman events --stream=false --since {since} --filter event=start --format '{{{{.Name}}}} {{{{.Image}}}}'"
    ));
    let verify_ctrs: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("oml-backup-verify-"))
        .collect();
    assert!(
        verify_ctrs.len() == 1 && verify_ctrs[0].ends_with(&format!(" {IMG}")),
        "podman events since {since}:\n{events}"
    );
    let all = ok("podman ps -a --format '{{.Names}}'");
    assert!(!all.contains("oml-backup-verify-"), "{all}");
    let verify_s = v["duration_ms"].as_u64().unwrap() as f64 / 1000.0;

    // 1b. An external postgres_host: pg_dump in a one-shot `podman run --rm --network=host` of the image.
    let (o, ext_time) = omlboot(
        w,
        &[
            "backup",
            "--format",
            "json",
            "--role",
            "aio",
            "--set",
            "postgres_host=127.0.0.1",
            "--set",
            &format!("backup_destination={}/dest-ext", w.display()),
        ],
    );
    let ext = json_of(&o);
    assert!(
        ext["verified"]["ok"] == true && ext["rows"] == CALLS + 7,
        "{ext}"
    );
    assert!(!ok("podman ps -a --format '{{.Names}}'").contains("oml-backup-verify-"));

    // 2. Change things after the backup.
    psql(
        "omnileads",
        "DELETE FROM reportes_app_llamadalog WHERE id <= 1000; UPDATE ominicontacto_app_campana SET nombre = 'renamed'; \
         DELETE FROM extra.notes; CREATE TABLE after_backup (k int); INSERT INTO after_backup VALUES (1)",
    );
    assert_eq!(count("reportes_app_llamadalog"), CALLS - 1000);
    ok(&format!(
        "printf 'changed\\n' > {wd}/conf/custom/oml_extensions_custom.conf && tar -C {wd}/conf -cf {wd}/conf2.tar . && podman volume import asterisk_conf {wd}/conf2.tar"
    ));

    // 3. A corrupted archive: refused (exit 2) before anything is stopped or touched.
    let bad = w.join("corrupt");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(&manifest_path, bad.join(manifest_path.file_name().unwrap())).unwrap();
    let mut bytes = std::fs::read(&archive_path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(bad.join(archive_path.file_name().unwrap()), bytes).unwrap();
    let dbs_before = databases();
    let (o, _) = omlboot(
        w,
        &[
            "restore",
            bad.join(manifest_path.file_name().unwrap())
                .to_str()
                .unwrap(),
            "--role",
            "aio",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "corrupt archive: {err}");
    assert!(err.contains("nothing was touched"), "{err}");
    eprintln!("corrupt archive refused: {}", err.trim());
    assert_eq!(databases(), dbs_before);
    assert_eq!(count("reportes_app_llamadalog"), CALLS - 1000);
    assert_eq!(count("after_backup"), 1);
    assert!(
        running().contains(&WRITER_CTR.to_string()),
        "the writer must not be stopped"
    );

    // 4. Restore (the library's restore, what `omlboot restore` runs) with the real podman paths; the units via
    //    the Services test double.
    let pg = Pg {
        client: Client::Exec {
            container: PG_CTR.into(),
        },
        host: None,
        port: 5432,
        user: "omnileads".into(),
        password: Some("pg-secret".into()),
        database: "omnileads".into(),
        maintenance_db: "postgres".into(),
        scratch: ScratchKind::Container { image: IMG.into() },
    };
    let units = PodmanUnits::default();
    let now = omlboot::apply::state::now_unix();
    let req = Request {
        source: manifest_path.to_str().unwrap(),
        discard_previous: false,
        writers: vec![WRITER_UNIT.into()],
        work: w.join("work"),
        root: w.join("root"),
        now,
    };
    let t = Instant::now();
    let r = match restore::restore(&pg, &PodmanVolumes, &units, None, &req) {
        Ok(r) => r,
        Err(restore::Refused::Invalid(m)) => panic!("refused: {m}"),
        Err(restore::Refused::Failed(e)) => panic!("failed: {e:#}"),
    };
    let restore_time = t.elapsed();
    eprintln!("restored: {r:?}");
    let log = units.log.lock().unwrap().clone();
    eprintln!("units: {log:#?}");
    let previous = r.previous.clone().expect("the replaced database is kept");
    assert!(previous.starts_with("omnileads_previous_"), "{previous}");
    assert_eq!(log.len(), 2, "{log:?}");
    // Stopped before anything was loaded (no staged database yet), started after the switch.
    assert!(
        log[0].starts_with(&format!("stop {WRITER_UNIT}:"))
            && !log[0].contains(WRITER_CTR)
            && !log[0].contains("omnileads_restore_"),
        "{log:?}"
    );
    assert!(
        log[1].starts_with(&format!("start {WRITER_UNIT}:")) && log[1].contains(&previous),
        "{log:?}"
    );
    assert!(running().contains(&WRITER_CTR.to_string()));
    // Rows as backed up; the old data kept in the previous database; the file back.
    assert_eq!(count("reportes_app_llamadalog"), CALLS);
    assert_eq!(fingerprint(), backed_up);
    assert_eq!(count("extra.notes"), 2);
    assert_eq!(
        psql("omnileads", "SELECT to_regclass('after_backup') IS NULL"),
        "t"
    );
    assert_eq!(
        psql(&previous, "SELECT count(*) FROM reportes_app_llamadalog"),
        (CALLS - 1000).to_string()
    );
    assert_eq!(psql(&previous, "SELECT count(*) FROM after_backup"), "1");
    assert_eq!(r.volumes, ["asterisk_conf"]);
    let file = ok(&format!(
        "mkdir -p {wd}/out && podman volume export asterisk_conf | tar -x -C {wd}/out -f - && cat {wd}/out/custom/oml_extensions_custom.conf"
    ));
    assert_eq!(file, "[from-custom]\nexten => 1,1,NoOp\n");

    // 5. The real `omlboot restore` end to end, on a data host (no unit there writes to the database).
    psql(
        "omnileads",
        "DELETE FROM reportes_app_llamadalog WHERE id > 100",
    );
    std::thread::sleep(Duration::from_secs(1)); // another tag than the restore above
    let (o, cli_restore_time) = omlboot(
        w,
        &[
            "restore",
            manifest_path.to_str().unwrap(),
            "--format",
            "json",
            "--role",
            "data",
            "--set",
            "data_host=10.90.0.1",
            "--set",
            "voice_host=10.90.0.2",
            "--set",
            "application_host=10.90.0.3",
            "--set",
            "ami_password=ami-secret-1",
            "--set",
            "bucket_secret_key=bucket-secret-1",
            "--set",
            "s3_http_admin_pass=s3-admin-secret-1",
        ],
    );
    let restored = json_of(&o);
    eprintln!("omlboot restore: {restored}");
    assert_eq!(restored["rows"], CALLS + 7, "{restored}");
    let previous2 = restored["previous"].as_str().unwrap().to_string();
    assert_ne!(previous2, previous);
    assert_eq!(count("reportes_app_llamadalog"), CALLS);
    assert_eq!(
        psql(&previous2, "SELECT count(*) FROM reportes_app_llamadalog"),
        "100"
    );
    assert!(
        databases().contains(&previous),
        "the first previous is still kept"
    );

    // A throwaway verification container that dies at once is reported at once, with its last words
    // (it used to be waited for 120 s, its logs gone with --rm).
    ok(&format!(
        "podman create --name oml-dies {IMG} >/dev/null && podman commit -q --change \
         'ENTRYPOINT [\"/bin/sh\", \"-c\", \"echo FATAL: this image dies >&2; exit 3\"]' \
         oml-dies localhost/omlboot-test/dies:1 >/dev/null && podman rm oml-dies >/dev/null"
    ));
    let dies = Pg {
        client: Client::Exec {
            container: PG_CTR.into(),
        },
        host: None,
        port: 5432,
        user: "omnileads".into(),
        password: Some("pg-secret".into()),
        database: "omnileads".into(),
        maintenance_db: "postgres".into(),
        scratch: ScratchKind::Container {
            image: "localhost/omlboot-test/dies:1".into(),
        },
    };
    let t = Instant::now();
    let e = match omlboot::backup::seams::Postgres::scratch(&dies) {
        Ok(_) => panic!("a dead verification container was taken for a database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("exited before accepting connections") && e.contains("this image dies"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());

    eprintln!(
        "FIGURES: {CALLS} calls + 7 rows in 3 tables, archive {size} bytes ({:.1} KiB); omlboot backup {:.1} s \
         (verify {verify_s:.1} s in a throwaway container); backup via postgres_host (podman run) {:.1} s; \
         restore (library, podman exec + writer stop/start) {:.1} s; omlboot restore (binary) {:.1} s",
        size as f64 / 1024.0,
        backup_time.as_secs_f64(),
        ext_time.as_secs_f64(),
        restore_time.as_secs_f64(),
        cli_restore_time.as_secs_f64(),
    );
}
