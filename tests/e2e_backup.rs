//! `omlboot backup` / `restore` on real boots (issue 12): three guests on one private segment.
//!
//! * `backup-a` (10.10.10.11): an aio host provisioned by cloud-config/aio.yaml with a backup schedule
//!   and its own MinIO as backup destination. The test writes rows through PostgreSQL and a file into an
//!   Asterisk volume, then backs up to the host's bucket and to the external S3 server, both verified.
//! * `backup-s3` (10.10.10.20): an external S3 server (the MinIO stand-in, a real SigV4 server) and
//!   nothing else.
//! * `backup-b` (10.10.10.12): a fresh aio host that boots only once A's backup exists, with
//!   `restore_file_timestamp` naming it on the external server: it must end `done` with A's rows and
//!   file, its units healthy, its login answering.
//!
//! While B provisions, A shows the faults: a corrupt and a truncated archive refused (exit 2, data
//! intact, nothing stopped), `kill -9` of `omlboot restore` at every step of its journal followed by
//! another restore (the data old or new at the kill, never lost; new after the rerun), and the
//! schedule through the real systemd units: the timer's next elapse in the window, a failed run, a
//! retry refused before 20 minutes, allowed after (the guest's clock moved on), then once per window.
//!
//! VM test: `tests/e2e/run.sh backup` (`#[ignore]` for plain `cargo test`; not in CI's default set).

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::scenario::{
    assert_units_active, component_units, https_status, repo_file, sql, status_json, test_overrides,
};
use harness::{sh_quote, Guest, GuestSpec, Lab, Nic, UserData};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Boot, cloud-init and the first `omlboot run` of every component under TCG, with other guests busy.
const PROVISION: Duration = Duration::from_secs(3000);
/// One backup or restore (dump, verification container, upload; units stopped and started).
const RUN: Duration = Duration::from_secs(900);
const A_IP: &str = "10.10.10.11";
const B_IP: &str = "10.10.10.12";
const S3_IP: &str = "10.10.10.20";
const S3_KEY_ID: &str = "e2e-external-backups";
const S3_SECRET: &str = "e2e-external-backups-secret-key-0123456789";
const S3_BUCKET: &str = "oml-backups";
/// Rows in the backup (`v1`) and rows added after it (`v2`): the live data differs from the backup.
const ROWS_V1: u32 = 5000;
const ROWS_V2: u32 = 1000;
/// The restore journal's steps (src/backup/restore.rs), each written before the step it names.
const RESTORE_STEPS: [&str; 4] = ["stop", "load", "switch", "files"];

fn on_segment(name: &str, ip: &str, ud: UserData) -> GuestSpec {
    GuestSpec::new(name, ud).nics(vec![Nic::Private {
        address: format!("{ip}/24"),
        gateway: None,
    }])
}

fn utc_hour_now() -> u32 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ((s % 86_400) / 3600) as u32
}

/// The external server's settings for `omlboot` on A (the secret through the environment, not argv).
fn external(args: &str) -> String {
    format!(
        "OMLBOOT_BACKUP_BUCKET_SECRET_KEY={} omlboot {args} --set backup_destination=s3://{S3_BUCKET}/omlboot \
         --set backup_bucket_url=http://{S3_IP}:9000 --set backup_bucket_key_id={S3_KEY_ID}",
        sh_quote(S3_SECRET)
    )
}

/// `omlboot ARGS` in the guest: (exit code, stdout, stderr, seconds).
fn omlboot(g: &Guest, cmd: &str) -> (i32, String, String, f64) {
    let t = Instant::now();
    let o = g
        .exec_timeout(cmd, RUN)
        .unwrap_or_else(|e| panic!("{cmd}: {e:#}"));
    (o.code, o.stdout, o.stderr, t.elapsed().as_secs_f64())
}

fn json(out: &str, what: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{out}"))
}

/// A query on another database of the host's PostgreSQL (the application's login).
fn sql_in(g: &Guest, db: &str, query: &str) -> String {
    let cmd = format!(
        "env_of() {{ grep \"^$1=\" /etc/default/django.env | cut -d= -f2-; }}; \
         podman exec -e PGPASSWORD=\"$(env_of PGPASSWORD)\" oml-postgresql-server \
         psql -h 127.0.0.1 -p \"$(env_of PGPORT)\" -U \"$(env_of PGUSER)\" -d {} -tAc {}",
        sh_quote(db),
        sh_quote(query)
    );
    g.sh(&cmd).trim().to_string()
}

/// The test's data: (rows, rows marked v2).
fn rows(g: &Guest, db: &str) -> (u64, u64) {
    let r = sql_in(
        g,
        db,
        "SELECT count(*) || ' ' || count(*) FILTER (WHERE note = 'v2') FROM e2e_backup_rows",
    );
    let (a, b) = r.split_once(' ').unwrap_or_else(|| panic!("rows: {r}"));
    (a.parse().unwrap(), b.parse().unwrap())
}

/// The file the test keeps in the asterisk_conf volume (what omldeploytool calls the custom dialplan).
const CUSTOM: &str = "e2e_extensions_custom.conf";

fn volume_dir(g: &Guest, volume: &str) -> String {
    g.sh(&format!(
        "podman volume inspect {volume} --format '{{{{.Mountpoint}}}}'"
    ))
    .trim()
    .to_string()
}

fn custom_file(g: &Guest) -> String {
    let dir = volume_dir(g, "asterisk_conf");
    g.read_file(&format!("{dir}/{CUSTOM}"))
        .unwrap()
        .unwrap_or_else(|| "<missing>".into())
        .trim()
        .to_string()
}

/// Live data back to "old": v2 rows added and the file rewritten (after a restore put v1 back).
fn make_v2(g: &Guest) {
    sql(
        g,
        &format!(
            "DELETE FROM e2e_backup_rows WHERE id > {ROWS_V1}; \
             INSERT INTO e2e_backup_rows SELECT i, 'v2' FROM generate_series({}, {}) i",
            ROWS_V1 + 1,
            ROWS_V1 + ROWS_V2
        ),
    );
    let dir = volume_dir(g, "asterisk_conf");
    g.write_file(&format!("{dir}/{CUSTOM}"), b"; v2\n").unwrap();
}

#[test]
#[ignore = "boots three VMs under TCG (~30 min): tests/e2e/run.sh backup"]
fn backup_on_host_a_restores_on_fresh_host_b_refuses_corrupt_survives_kill_and_keeps_the_schedule()
{
    let t0 = Instant::now();
    // The schedule's window: two hours from now, so the timer's next elapse is in the future and the
    // manual backups below fall outside it.
    let h = utc_hour_now();
    let (w0, w1) = ((h + 2) % 24, (h + 3) % 24);
    let a_ud = UserData::with_overrides(
        &repo_file("cloud-config/aio.yaml"),
        &[&test_overrides(&format!(
            "backup_destination: s3://omnileads/backups\nbackup_hours: \"{w0:02}-{w1:02}\""
        ))],
    );
    let s3_ud = UserData::cloud_config("#cloud-config\n{}\n");
    let b_spec = on_segment(
        "backup-b",
        B_IP,
        UserData::cloud_config("#cloud-config\n{}\n"),
    )
    .mem_mb(3072)
    .deferred();
    let mut lab = Lab::boot(vec![
        on_segment("backup-a", A_IP, a_ud).mem_mb(3072),
        on_segment("backup-s3", S3_IP, s3_ud).mem_mb(1024).cpus(1),
        b_spec,
    ])
    .expect("boot");
    let (a, s3) = (lab.guest("backup-a"), lab.guest("backup-s3"));
    let ci = a.expect_cloud_init(PROVISION);
    s3.expect_cloud_init(PROVISION);
    eprintln!(
        "E2E-FIGURE backup scenario: host A provisioned, cloud-init done after {:.0}s",
        ci.seconds
    );
    let (code, st) = status_json(a);
    assert_eq!((code, st["status"].as_str()), (0, Some("done")), "{st:#}");
    let units = component_units(a);
    assert_units_active(a, &units);

    // ------------------------------------------------------------- the external S3 server
    s3.sh(&format!(
        "systemctl is-active --quiet docker-registry || systemctl start docker-registry; \
         mkdir -p /srv/s3/{S3_BUCKET} && \
         podman run -d --name external-s3 --network=host -v /srv/s3:/data \
           -e MINIO_ROOT_USER={S3_KEY_ID} -e MINIO_ROOT_PASSWORD={} \
           localhost:5000/minio/minio:e2e server /data --address {S3_IP}:9000",
        sh_quote(S3_SECRET)
    ));
    let live = format!("http://{S3_IP}:9000/minio/health/live");
    let deadline = Instant::now() + Duration::from_secs(300);
    while a
        .sh(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {live} || true"
        ))
        .trim()
        != "200"
    {
        assert!(
            Instant::now() < deadline,
            "external S3 never answered: {}",
            s3.sh("podman logs --tail 30 external-s3 2>&1 || true")
        );
        std::thread::sleep(Duration::from_secs(3));
    }

    // ------------------------------------------------------------- A's data, the timer
    sql(
        a,
        &format!(
            "CREATE TABLE e2e_backup_rows (id int PRIMARY KEY, note text NOT NULL); \
             INSERT INTO e2e_backup_rows SELECT i, 'v1' FROM generate_series(1, {ROWS_V1}) i"
        ),
    );
    let dir = volume_dir(a, "asterisk_conf");
    a.write_file(&format!("{dir}/{CUSTOM}"), b"; v1\n").unwrap();
    assert_eq!(rows(a, "omnileads"), (ROWS_V1 as u64, 0));
    assert_eq!(
        a.sh("systemctl is-enabled omlboot-backup.timer").trim(),
        "enabled"
    );
    // systemd prints the property as a date ("Mon 2026-12-07 09:00:00 UTC"); date(1) reads it back.
    let shown = a
        .sh("systemctl show omlboot-backup.timer -p NextElapseUSecRealtime --value")
        .trim()
        .to_string();
    let next = a
        .sh(&format!("date -u -d {} +%s", sh_quote(&shown)))
        .trim()
        .parse::<u64>()
        .unwrap_or_else(|e| panic!("the timer's next elapse {shown:?}: {e}"));
    let next_hour = ((next % 86_400) / 3600) as u32;
    assert!(
        next_hour == w0 || next_hour == w1,
        "the timer's next elapse ({next}, hour {next_hour}) is not in the window {w0:02}-{w1:02}"
    );
    eprintln!("E2E-FIGURE backup schedule: window {w0:02}-{w1:02} UTC, the timer's next elapse {shown} (systemd, PID 1)");

    // ------------------------------------------------------------- backups: own bucket, external S3
    let (code, out, err, secs) = omlboot(a, "omlboot backup --format json");
    assert_eq!(code, 0, "backup to the host's bucket:\n{out}\n{err}");
    let own = json(&out, "backup");
    assert_eq!(own["verified"]["ok"], true, "{own:#}");
    let own_name = own["name"].as_str().unwrap().to_string();
    eprintln!(
        "E2E-FIGURE backup to the host's MinIO: {} bytes, {} tables, {} rows, {:.1}s (verify {} ms), wall {secs:.0}s",
        own["size"], own["tables"], own["rows"],
        own["duration_ms"].as_f64().unwrap() / 1000.0,
        own["verified"]["duration_ms"]
    );
    let (code, out, err, secs) = omlboot(a, &external("backup --format json"));
    assert_eq!(code, 0, "backup to the external S3 server:\n{out}\n{err}");
    let ext = json(&out, "external backup");
    assert_eq!(ext["verified"]["ok"], true, "{ext:#}");
    let ext_name = ext["name"].as_str().unwrap().to_string();
    eprintln!(
        "E2E-FIGURE backup to the external S3 server: {} bytes, {:.1}s (verify {} ms), wall {secs:.0}s",
        ext["size"],
        ext["duration_ms"].as_f64().unwrap() / 1000.0,
        ext["verified"]["duration_ms"]
    );
    let (code, out, _, _) = omlboot(a, &external("backup --list --format json"));
    assert_eq!(code, 0);
    assert!(
        json(&out, "list")
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == ext_name.as_str() && b["verified"] == true),
        "{out}"
    );
    let stored = s3.sh(&format!("find /srv/s3/{S3_BUCKET} -type f | sort"));
    assert!(
        stored.contains(".manifest.json") && stored.contains(".tar.gz"),
        "the external server holds the archive and its manifest: {stored}"
    );
    let (_, st) = status_json(a);
    assert!(
        st.to_string().contains(&ext_name),
        "status shows the last backup: {st:#}"
    );

    // ------------------------------------------------------------- B boots, restoring A's backup
    let b_ud = UserData::with_overrides(
        &repo_file("cloud-config/aio.yaml"),
        &[&test_overrides(&format!(
            "restore_file_timestamp: {ext_name}\nbackup_destination: s3://{S3_BUCKET}/omlboot\n\
             backup_bucket_url: http://{S3_IP}:9000\nbackup_bucket_key_id: {S3_KEY_ID}\n\
             backup_bucket_secret_key: {S3_SECRET}"
        ))],
    );
    lab.guests
        .iter_mut()
        .find(|g| g.name == "backup-b")
        .unwrap()
        .start(Some(b_ud))
        .expect("start B");
    let a = lab.guest("backup-a");

    // ------------------------------------------------------------- A: corrupt and truncated archives
    make_v2(a);
    let old = (ROWS_V1 as u64 + ROWS_V2 as u64, ROWS_V2 as u64);
    assert_eq!(rows(a, "omnileads"), old);
    let (code, out, err, _) = omlboot(
        a,
        "omlboot backup --set backup_destination=/var/backups/e2e --format json",
    );
    assert_eq!(code, 0, "backup to a directory:\n{out}\n{err}");
    let archive = a
        .sh("find /var/backups/e2e -name '*.tar.gz' | head -1")
        .trim()
        .to_string();
    let manifest = archive.replace(".tar.gz", ".manifest.json");
    let active_before = a.sh("systemctl show -p ActiveEnterTimestampMonotonic --value omnileads.service asterisk.service");
    for (case, damage) in [
        (
            "one byte flipped",
            format!("printf X | dd of={archive} bs=1 seek=$(( $(stat -c %s {archive}) / 2 )) conv=notrunc status=none"),
        ),
        (
            "truncated",
            format!("truncate -s $(( $(stat -c %s {archive}) / 3 )) {archive}"),
        ),
    ] {
        a.sh(&damage);
        let (code, out, err, secs) = omlboot(a, &format!("omlboot restore {manifest}"));
        assert_eq!(
            code, 2,
            "a {case} archive must be refused with exit 2:\n{out}\n{err}"
        );
        assert!(
            err.contains("nothing was touched"),
            "{case}: the refusal says the host was not touched:\n{err}"
        );
        assert_eq!(rows(a, "omnileads"), old, "{case}: data intact");
        assert_eq!(custom_file(a), "; v2", "{case}: files intact");
        eprintln!("E2E-FIGURE restore of a {case} archive: refused, exit 2 after {secs:.1}s, data intact");
    }
    assert_eq!(
        a.sh("systemctl show -p ActiveEnterTimestampMonotonic --value omnileads.service asterisk.service"),
        active_before,
        "a refused restore stops nothing"
    );

    // ------------------------------------------------------------- A: kill -9 at every restore step
    let killat = std::fs::read(harness::artifacts::e2e_dir().join("guest-killat-upgrade.sh"))
        .expect("guest-killat-upgrade.sh");
    a.write_file("/root/killat.sh", &killat).unwrap();
    let mut table = vec![];
    for (n, step) in RESTORE_STEPS.iter().enumerate() {
        if n > 0 {
            make_v2(a);
        }
        assert_eq!(rows(a, "omnileads"), old);
        let report = a
            .exec_timeout(
                &format!(
                    "KILLAT_JOURNAL=/var/lib/omlboot/restore.json KILLAT_LOG=/root/restore-kill \
                     bash /root/killat.sh {n} {step} 600 restore {own_name}"
                ),
                RUN,
            )
            .unwrap()
            .stdout;
        assert!(
            report.contains(&format!("killed={step}")),
            "the kill did not land in `{step}`:\n{report}\n{}",
            a.sh(&format!(
                "cat /root/restore-kill-{n}.log; cat /var/lib/omlboot/restore.json || true"
            ))
        );
        let live = rows(a, "omnileads");
        let at_kill = if live == old {
            "old"
        } else if live == (ROWS_V1 as u64, 0) {
            // The switch happened: the replaced data must be kept.
            let kept = sql(
                a,
                "SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE 'omnileads_previous_%'",
            );
            assert!(
                kept.split(' ').any(|d| rows(a, d) == old),
                "after the switch, the replaced data is kept in one of {kept:?}"
            );
            "new"
        } else {
            panic!("at the kill in `{step}` the live data is neither old nor new: {live:?}")
        };
        let file_at_kill = custom_file(a);
        let (code, out, err, secs) =
            omlboot(a, &format!("omlboot restore {own_name} --format json"));
        assert_eq!(code, 0, "restore after the kill in `{step}`:\n{out}\n{err}");
        let r = json(&out, "restore");
        assert_eq!(
            rows(a, "omnileads"),
            (ROWS_V1 as u64, 0),
            "new after the rerun"
        );
        assert_eq!(custom_file(a), "; v1", "the file restored");
        assert!(
            !r["previous_volumes"]
                .as_array()
                .map(|v| v.is_empty())
                .unwrap_or(true),
            "the replaced volumes are kept: {r:#}"
        );
        assert_units_active(a, &units);
        assert_eq!(https_status(a, A_IP), "302", "the login answers again");
        table.push(format!(
            "| `{step}` | {at_kill} | {file_at_kill} | {secs:.0}s ({} ms in omlboot) | new, units active, login 302 |",
            r["duration_ms"]
        ));
    }
    eprintln!("E2E-FIGURE restore kill -9 table:\n| step killed | database at the kill | file at the kill | rerun | after the rerun |\n|---|---|---|---|---|\n{}", table.join("\n"));

    // ------------------------------------------------------------- A: the schedule, through systemd
    // The timer is stopped so that only these starts run the service; the clock is moved into the window.
    a.sh("systemctl stop omlboot-backup.timer; timedatectl set-ntp false 2>/dev/null || true");
    let now = a.sh("date +%s").trim().parse::<u64>().unwrap();
    let hour = ((now % 86_400) / 3600) as u32;
    let into_window = now - now % 3600 + ((w0 + 24 - hour) % 24) as u64 * 3600 + 5 * 60;
    a.sh(&format!("date -s @{into_window} >/dev/null"));
    let service = |what: &str| -> (String, String) {
        let o = a
            .exec_timeout(
                "systemctl start omlboot-backup.service; r=$?; \
                 systemctl show -p Result --value omlboot-backup.service; exit $r",
                RUN,
            )
            .unwrap();
        let log = a.sh("journalctl -u omlboot-backup.service -n 10 --no-pager -o cat");
        eprintln!(
            "e2e: scheduled run ({what}): exit {}, {}",
            o.code,
            o.stdout.trim()
        );
        (o.stdout.trim().to_string(), log)
    };
    a.sh("systemctl stop minio.service");
    let (result, log) = service("MinIO stopped");
    a.sh("systemctl start minio.service");
    assert_ne!(
        result, "success",
        "a backup whose upload fails fails the service:\n{log}"
    );
    let failed_at = a.sh("date +%s").trim().parse::<u64>().unwrap();
    let (result, log) = service("right after the failure");
    assert_eq!(result, "success", "{log}");
    assert!(log.contains("retry no earlier than"), "{log}");
    a.sh(&format!("date -s @{} >/dev/null", failed_at + 21 * 60));
    let (result, log) = service("21 minutes later");
    assert_eq!(result, "success", "{log}");
    let rec: Value = json(&a.sh("cat /var/lib/omlboot/backup.json"), "backup.json");
    assert!(
        rec["last_success"].as_u64().unwrap() >= failed_at + 20 * 60,
        "the retry ran no earlier than 20 minutes after the failure: {rec:#}"
    );
    assert_eq!(rec["last"]["verified"], true, "{rec:#}");
    let (result, log) = service("again in the same window");
    assert_eq!(result, "success");
    assert!(log.contains("already backed up in this window"), "{log}");
    a.sh("systemctl start omlboot-backup.timer");
    eprintln!("E2E-FIGURE backup schedule: failed run (MinIO stopped), retry refused at once, ran 21 min later (guest clock), then once per window");

    // ------------------------------------------------------------- B: restored at first boot
    let b = lab.guest("backup-b");
    let ci = b.expect_cloud_init(PROVISION);
    let (code, st) = status_json(b);
    assert_eq!(
        (code, st["status"].as_str()),
        (0, Some("done")),
        "B: {st:#}"
    );
    assert_units_active(b, &component_units(b));
    assert_eq!(rows(b, "omnileads"), (ROWS_V1 as u64, 0), "B has A's rows");
    assert_eq!(custom_file(b), "; v1", "B has A's file");
    assert_eq!(https_status(b, B_IP), "302", "B's login answers");
    let rec: Value = json(&b.sh("cat /var/lib/omlboot/backup.json"), "B backup.json");
    assert_eq!(rec["first_boot"]["source"], ext_name.as_str(), "{rec:#}");
    assert_eq!(rec["first_boot"]["probes_passed"], true, "{rec:#}");
    let restored = b.sh("grep -h 'restored ' /var/log/cloud-init-output.log || true");
    assert!(
        restored.contains("ran again on the restored database"),
        "the migrations and the admin reset ran again on A's database: {restored}"
    );
    // A's reset, then B's on A's database (the fresh database's own reset is in the kept one).
    assert_eq!(sql(b, "SELECT count(*) FROM e2e_admin_resets"), "2");
    eprintln!(
        "E2E-FIGURE host B: cloud-init done after {:.0}s, {}",
        ci.seconds,
        restored.trim()
    );
    eprintln!(
        "E2E-FIGURE backup scenario took {:.0}s",
        t0.elapsed().as_secs_f64()
    );
}
