//! `omlboot run`/`apply` on real boots (issue 4): the project's cloud-config files, as they are, with
//! test overrides that point the `*_img` keys at the stand-in images in the guest's own registry.
//! VM tests: `tests/e2e/run.sh apply` (they are `#[ignore]` for plain `cargo test`).

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::scenario::{
    assert_units_active, component_units, first_boot_seconds, https_status, repo_file, sql,
    state_json, status_json, step_breakdown, step_seconds, test_overrides,
};
use harness::{GuestSpec, Lab, Nic, UserData};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Boot + cloud-init + provisioning of all components under TCG.
const PROVISION: Duration = Duration::from_secs(2400);

/// unit → (NRestarts, ActiveEnterTimestamp, ActiveState) for every component unit.
fn snapshot(g: &harness::Guest, units: &[String]) -> BTreeMap<String, (u32, String, String)> {
    units
        .iter()
        .map(|u| {
            let s = g.unit(u).expect("unit");
            (
                u.clone(),
                (s.n_restarts, s.active_enter_timestamp, s.active_state),
            )
        })
        .collect()
}

/// Every env/unit/config file omlboot manages, with mtime, so a re-run can be shown to write nothing.
fn managed_mtimes(g: &harness::Guest) -> String {
    g.sh("stat -c '%n %Y %a %U' /etc/default/*.env /etc/default/*.yml /etc/default/*.conf /etc/systemd/system/*.service /etc/omnileads/certs/* /var/lib/omlboot/secrets.yaml 2>/dev/null | sort")
}

/// First-boot time (cloud-init start to omlboot done) with omlboot's images and packages steps, and
/// the bootstrap tasks and probes.
fn first_boot_figures(g: &harness::Guest) -> String {
    let state = state_json(g);
    let prefixed = |prefix: &str| -> f64 {
        state["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["name"].as_str().unwrap_or("").starts_with(prefix))
            .map(|s| s["duration_ms"].as_f64().unwrap())
            .sum::<f64>()
            / 1000.0
    };
    format!(
        "first-boot-seconds={:.0} (cloud-init start to omlboot done; images step {:.0}s, packages {:.0}s, bootstrap tasks {:.0}s, probes {:.0}s summed over components)",
        first_boot_seconds(g),
        step_seconds(&state, "images"),
        step_seconds(&state, "packages"),
        prefixed("task "),
        prefixed("probe "),
    )
}

/// The host's private address as omlboot planned it (what a user types in the browser on a LAN).
fn guest_address(g: &harness::Guest) -> String {
    let plan: serde_json::Value =
        serde_json::from_str(&g.sh("omlboot plan --format json 2>/dev/null")).expect("plan JSON");
    plan["host"]["private_ip"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The repository's units/ into the guest at `dest`, with one bootstrap task taken out of the catalog.
fn copy_units_without_task(g: &harness::Guest, dest: &str, task: &str) {
    let root = harness::artifacts::repo_root().join("units");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut text = std::fs::read_to_string(&p).unwrap();
            if rel == "catalog.yaml" {
                let start = text
                    .find(&format!("\n  - name: {task}\n"))
                    .unwrap_or_else(|| panic!("no task {task} in the catalog"));
                let body = &text[start + 1..];
                let len = body[1..]
                    .find("\n  - name: ")
                    .or_else(|| body.find("\n\n"))
                    .map(|l| l + 1)
                    .unwrap();
                text = format!("{}{}", &text[..start + 1], &body[len + 1..]);
                assert!(!text.contains(&format!("name: {task}\n")));
            }
            g.sh(&format!("mkdir -p \"$(dirname {dest}/{rel})\""));
            g.write_file(&format!("{dest}/{rel}"), text.as_bytes())
                .unwrap();
        }
    }
}

/// No secret omlboot generated can be read by an unprivileged user anywhere on the guest: files
/// (podman copies --env-file values into its container configs), process command lines, the journal
/// as that user sees it, and `podman inspect` as that user.
fn assert_no_secret_readable_by_others(g: &harness::Guest) {
    let store = g
        .read_file("/var/lib/omlboot/secrets.yaml")
        .unwrap()
        .expect("secrets.yaml");
    let secrets: Vec<String> = store
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| v.len() >= 12)
        .collect();
    assert!(secrets.len() >= 4, "generated secrets: {}", secrets.len());
    g.write_file("/root/e2e-secret-patterns", secrets.join("\n").as_bytes())
        .unwrap();
    // The scan runs as `nobody` with the patterns on its stdin, so only what that user can read counts.
    let out = g
        .exec_timeout(
            "runuser -u nobody -- sh -c '\
               grep -rIlsF -f /dev/stdin /etc /var /run /tmp /home /opt /srv /usr/local 2>/dev/null; \
               ' < /root/e2e-secret-patterns; \
             ps -eo args | grep -F -f /root/e2e-secret-patterns | grep -v grep; \
             runuser -u nobody -- journalctl --no-pager -q 2>/dev/null | grep -cF -f /root/e2e-secret-patterns; \
             true",
            Duration::from_secs(600),
        )
        .unwrap();
    let leaks: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty() && l.trim() != "0")
        .collect();
    assert!(
        leaks.is_empty(),
        "a secret is readable by an unprivileged user: {leaks:?}"
    );
    g.sh("rm -f /root/e2e-secret-patterns");
}

/// What an operator sees: the login redirect on the host's address, the schema and the admin user in
/// the database, the static files behind nginx, a recording-bucket object written with the app's
/// credentials; and every task ran once, every probe passed.
fn assert_working_contact_center(g: &harness::Guest) {
    let address = guest_address(g);
    assert!(!address.is_empty(), "no private IP in the plan");
    assert_eq!(
        https_status(g, &address),
        "302",
        "https://{address}/ must redirect to the login"
    );
    assert_eq!(
        sql(g, "SELECT count(*) FROM auth_user WHERE username = 'admin'"),
        "1"
    );
    assert_eq!(sql(g, "SELECT count(*) FROM e2e_admin_resets"), "1");
    assert!(
        sql(g, "SELECT count(*) FROM django_migrations")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    let static_file = g.sh(&format!(
        "curl -k -s --max-time 20 https://{address}/static/e2e/collected.txt"
    ));
    assert!(
        !static_file.trim().is_empty(),
        "nginx serves the collected static files"
    );
    // uwsgi wrote and read back an object with AWS_ACCESS_KEY_ID/SECRET: MinIO (the stand-in) only
    // lets a user that omlboot created and gave the readwrite policy do that.
    let objects = g.sh("find /var/lib/containers/storage/volumes/oml_minio/_data -path '*/e2e-standin/uwsgi-*' | grep -c . || true");
    assert!(
        objects.trim().parse::<u32>().unwrap_or(0) >= 1,
        "no object written by uwsgi in the bucket"
    );
    let state = state_json(g);
    // Each task ran and succeeded (this run, or an earlier one when it was not needed again).
    for (name, t) in state["tasks"].as_object().expect("tasks in state") {
        let outcome = t["outcome"].as_str().unwrap_or_default();
        assert!(
            matches!(outcome, "succeeded" | "skipped") && t["successes"].as_u64() >= Some(1),
            "task {name}: {t:#}"
        );
    }
    for (name, c) in state["components"].as_object().unwrap() {
        if let Some(p) = c.get("probe") {
            assert_eq!(p["passed"], true, "probe of {name}: {p:#}");
        }
    }
    let table = g.exec("omlboot status").unwrap();
    assert!(
        table.stdout.contains("admin/admin"),
        "status reminds the operator: {}",
        table.stdout
    );
}

#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh apply"]
fn apply_aio_converges_reruns_change_nothing_and_one_change_restarts_one_component() {
    let ud = UserData::with_overrides(&repo_file("cloud-config/aio.yaml"), &[&test_overrides("")]);
    let lab = Lab::boot_one(GuestSpec::new("apply-aio", ud).mem_mb(3072)).expect("boot");
    let g = &lab.guests[0];
    g.expect_cloud_init(PROVISION);

    // status: done, every component active and enabled.
    let (code, st) = status_json(g);
    assert_eq!((code, st["status"].as_str()), (0, Some("done")), "{st:#}");
    let units = component_units(g);
    assert!(units.len() >= 20, "aio runs every component: {units:?}");
    assert_units_active(g, &units);
    eprintln!("E2E-FIGURE aio bare image {}", first_boot_figures(g));
    let containers = g.container_names().unwrap();
    assert!(
        containers.iter().any(|c| c == "oml-postgresql-server")
            && containers.iter().any(|c| c == "oml-uwsgi-server"),
        "{containers:?}"
    );
    assert_working_contact_center(g);
    assert_no_secret_readable_by_others(g);

    // Env files and modes are exactly what `render` produces for the same config (and the kept secrets).
    let diff = g.exec("rm -rf /tmp/r && omlboot render --out /tmp/r >/dev/null 2>&1 && for f in /tmp/r/etc/default/* /tmp/r/etc/systemd/system/*; do h=${f#/tmp/r}; cmp -s \"$f\" \"$h\" || echo \"DIFF $h\"; [ \"$(stat -c %a \"$f\")\" = \"$(stat -c %a \"$h\")\" ] || echo \"MODE $h\"; done").unwrap();
    assert!(
        diff.ok() && diff.stdout.trim().is_empty(),
        "host differs from render: {}{}",
        diff.stdout,
        diff.stderr
    );
    for env in g.sh("ls /etc/default/*.env").split_whitespace() {
        let s = g.file_stat(env).unwrap().unwrap();
        assert_eq!((s.mode, s.owner.as_str()), (0o600, "root"), "{env}");
    }
    let secrets = g
        .file_stat("/var/lib/omlboot/secrets.yaml")
        .unwrap()
        .expect("aio generated its passwords");
    assert_eq!(secrets.mode, 0o600);

    // Idempotency: a second apply changes no file and restarts nothing.
    let before_units = snapshot(g, &units);
    let before_files = managed_mtimes(g);
    let t = Instant::now();
    let again = g
        .exec_timeout("omlboot apply", Duration::from_secs(900))
        .unwrap();
    let took = t.elapsed();
    eprintln!(
        "E2E-FIGURE second apply on a converged aio guest: {:.1}s wall",
        took.as_secs_f64()
    );
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    eprintln!(
        "E2E-FIGURE second apply, by step: {}",
        step_breakdown(&state_json(g))
    );
    assert!(
        !again.stderr.contains(" changed ")
            && !again.stderr.contains(" restarted ")
            && !again.stderr.contains(" done "),
        "a converged re-run must change nothing and run no task:\n{}",
        again.stderr
    );
    assert_eq!(
        snapshot(g, &units),
        before_units,
        "NRestarts/ActiveEnterTimestamp changed on a no-op re-run"
    );
    assert_eq!(
        managed_mtimes(g),
        before_files,
        "a no-op re-run rewrote files"
    );

    // Change one component's setting: only that component restarts.
    let change = g
        .exec_timeout(
            "omlboot apply --set kamailio_shm_size=128",
            Duration::from_secs(900),
        )
        .unwrap();
    assert_eq!(change.code, 0, "{}\n{}", change.stdout, change.stderr);
    assert!(g
        .read_file("/etc/default/kamailio.env")
        .unwrap()
        .unwrap()
        .contains("SHM_MEMORY=128"));
    let after = snapshot(g, &units);
    for (u, (n, ts, state)) in &after {
        let (n0, ts0, _) = &before_units[u];
        assert_eq!(state, "active", "{u}");
        if u == "kamailio.service" {
            assert_ne!(ts, ts0, "kamailio.service must have restarted");
        } else {
            assert_eq!(
                (n, ts),
                (n0, ts0),
                "{u} restarted but its settings did not change"
            );
        }
    }

    // A new omlapp image: the migrations run once more (the admin reset never again), and only the
    // units of that image restart.
    let before_units = snapshot(g, &units);
    let migrations = sql(g, "SELECT count(*) FROM django_migrations");
    let new_image = "localhost:5000/omnileads/omlapp:e2e-2";
    let up = g
        .exec_timeout(
            &format!("omlboot apply --set kamailio_shm_size=128 --set omnileads_img={new_image}"),
            Duration::from_secs(900),
        )
        .unwrap();
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert_ne!(sql(g, "SELECT count(*) FROM django_migrations"), migrations);
    assert_eq!(sql(g, "SELECT count(*) FROM e2e_admin_resets"), "1");
    let omlapp_units = ["omnileads.service", "daphne.service", "omlcron.service"];
    for (u, (n, ts, state)) in &snapshot(g, &units) {
        let (n0, ts0, _) = &before_units[u];
        assert_eq!(state, "active", "{u}");
        if omlapp_units.contains(&u.as_str()) {
            assert_ne!(ts, ts0, "{u} runs the new image: it must have restarted");
        } else {
            assert_eq!(
                (n, ts),
                (n0, ts0),
                "{u} restarted but its image did not change"
            );
        }
    }
    assert_working_contact_center(g);

    // The test bed sees a missing bootstrap: the same change back, with the migrations task taken out
    // of a copy of the catalog and the schema dropped, fails and names why.
    copy_units_without_task(g, "/tmp/units", "django_migrations");
    sql(g, "DROP TABLE django_migrations");
    let broken = g
        .exec_timeout(
            "omlboot apply --units /tmp/units --set kamailio_shm_size=128",
            // The omlapp units fail their start and their probe, then so does the rollback to the
            // previous image (it needs the schema too): several start timeouts under TCG.
            Duration::from_secs(2400),
        )
        .unwrap();
    assert_eq!(
        broken.code, 1,
        "without the migrations the host must fail:\n{}\n{}",
        broken.stdout, broken.stderr
    );
    assert!(
        broken.stdout.contains("omnileads")
            && (broken.stdout.contains("probe FAILED") || broken.stdout.contains("failed")),
        "status must name the component that does not work: {}",
        broken.stdout
    );
}

#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh apply"]
fn apply_unpullable_image_fails_that_component_and_starts_the_rest() {
    // A voice host (fewest images) of the shipped cluster user-data, alone on its private address.
    let ud = UserData::with_overrides(
        &repo_file("cloud-config/voice.yaml"),
        &[&test_overrides(
            "interaction_processor_img: localhost:5000/omnileads/no-such-image:e2e",
        )],
    );
    let spec = GuestSpec::new("apply-fail", ud)
        .nics(vec![Nic::Private {
            address: "10.10.10.12/24".into(),
            gateway: None,
        }])
        .mem_mb(2048);
    let lab = Lab::boot_one(spec).expect("boot");
    let g = &lab.guests[0];
    // `omlboot run` exits 1, so cloud-init reports the runcmd failure.
    let failure = g
        .wait_cloud_init(PROVISION)
        .expect_err("provisioning with an unpullable image must fail");
    eprintln!("expected failure: {:?}", failure.kind);
    let (code, st) = status_json(g);
    assert_eq!((code, st["status"].as_str()), (1, Some("failed")), "{st:#}");
    let ip = &st["components"]["interaction_processor"];
    assert_eq!(ip["state"], "failed", "{st:#}");
    let reason = ip["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no-such-image") && reason.contains("NotFound"),
        "status must name the image and why: {reason}"
    );
    // asterisk logs in to the data host's PostgreSQL, which this lone voice host does not have (the
    // stand-ins fail the way the real images would): it fails too, for its own reason: its start
    // fails, or (systemd restarting it, so the unit looks active) its probe never passes.
    let asterisk = &st["components"]["asterisk"];
    assert!(
        asterisk["state"] == "failed" || asterisk["probe"]["passed"] == false,
        "{st:#}"
    );
    let others: Vec<String> = st["components"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n != "interaction_processor" && *n != "asterisk")
        .map(|(_, c)| c["unit"].as_str().unwrap().to_string())
        .collect();
    assert!(others.len() >= 3, "{others:?}");
    assert_units_active(g, &others);
    // The table form names it too, for the operator at a console.
    let table = g.exec("omlboot status").unwrap();
    assert_eq!(table.code, 1);
    assert!(
        table.stdout.contains("interaction_processor") && table.stdout.contains("failed"),
        "{}",
        table.stdout
    );
}

#[test]
#[ignore = "boots three VMs; run with tests/e2e/run.sh apply"]
fn apply_cluster_three_hosts_reach_all_active_and_point_at_their_peers() {
    // The cluster user-data files use 10.10.10.11-13; the lab's private segment gives the guests exactly those.
    let spec = |role: &str, ip: &str| {
        let ud = UserData::with_overrides(
            &repo_file(&format!("cloud-config/{role}.yaml")),
            &[&test_overrides("")],
        );
        GuestSpec::new(&format!("apply-{role}"), ud)
            .nics(vec![Nic::Private {
                address: format!("{ip}/24"),
                gateway: None,
            }])
            .mem_mb(2048)
            .cpus(1)
    };
    let lab = Lab::boot(vec![
        spec("data", "10.10.10.11"),
        spec("voice", "10.10.10.12"),
        spec("app", "10.10.10.13"),
    ])
    .expect("boot");
    lab.wait_cloud_init(PROVISION)
        .unwrap_or_else(|f| panic!("{f}"));
    for g in &lab.guests {
        let (code, st) = status_json(g);
        assert_eq!(
            (code, st["status"].as_str()),
            (0, Some("done")),
            "{}: {st:#}",
            g.name
        );
        assert_units_active(g, &component_units(g));
    }
    let (data, voice, app) = (
        lab.guest("apply-data"),
        lab.guest("apply-voice"),
        lab.guest("apply-app"),
    );
    let env = |g: &harness::Guest, f: &str| {
        g.read_file(&format!("/etc/default/{f}"))
            .unwrap()
            .unwrap_or_else(|| panic!("{f} missing"))
    };
    let django = env(app, "django.env");
    for want in [
        "PGHOST=10.10.10.11",
        "REDIS_HOSTNAME=10.10.10.11",
        "ASTERISK_HOSTNAME=10.10.10.12",
        "S3_ENDPOINT_MINIO=http://10.10.10.11:9000",
    ] {
        assert!(
            django.contains(want),
            "app django.env lacks {want}:\n{django}"
        );
    }
    let kam = env(app, "kamailio.env");
    assert!(
        kam.contains("RTPENGINE_HOSTNAME=10.10.10.12")
            && kam.contains("REDIS_HOSTNAME=10.10.10.11"),
        "{kam}"
    );
    let ast = env(voice, "asterisk.env");
    for want in [
        "PGHOST=10.10.10.11",
        "FASTAGI=10.10.10.13",
        "OMNILEADS_HOSTNAME=10.10.10.13",
        "RABBITMQ_HOST=10.10.10.11",
    ] {
        assert!(
            ast.contains(want),
            "voice asterisk.env lacks {want}:\n{ast}"
        );
    }
    assert!(env(data, "redis.env").contains("BIND_IP=10.10.10.11"));
    // The lab's segment: the three hosts and nothing else, no way out.
    for g in &lab.guests {
        assert!(
            g.sh("ip -4 route show default").trim().is_empty(),
            "{}: no default route",
            g.name
        );
        assert_ne!(
            g.exec("ping -c 1 -W 2 10.10.10.1").unwrap().code,
            0,
            "nothing else on the segment"
        );
    }
    // Not only written: the peers really answer on those addresses.
    for (port, what) in [(5432, "postgresql"), (6379, "redis"), (5672, "rabbitmq")] {
        let r = app
            .exec(&format!("timeout 5 bash -c '</dev/tcp/10.10.10.11/{port}'"))
            .unwrap();
        assert!(
            r.ok(),
            "app cannot reach {what} on the data host ({port}): {}",
            r.stderr
        );
    }
}
