//! `omlboot run`/`apply` on real boots (issue 4): the project's cloud-config files, as they are, with
//! test overrides that point the `*_img` keys at the stand-in images in the guest's own registry.
//! VM tests: `tests/e2e/run.sh apply` (they are `#[ignore]` for plain `cargo test`).

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::scenario::{
    assert_units_active, component_units, first_boot_seconds, repo_file, state_json, status_json,
    step_seconds, test_overrides,
};
use harness::{GuestSpec, Lab, Nic, UserData};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Boot + cloud-init + provisioning of all components under TCG.
const PROVISION: Duration = Duration::from_secs(1500);

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

/// First-boot time (cloud-init start to omlboot done) with omlboot's images and packages steps.
fn first_boot_figures(g: &harness::Guest) -> String {
    let state = state_json(g);
    format!(
        "first-boot-seconds={:.0} (cloud-init start to omlboot done; images step {:.0}s, packages {:.0}s)",
        first_boot_seconds(g),
        step_seconds(&state, "images"),
        step_seconds(&state, "packages"),
    )
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
    assert!(
        !again.stderr.contains(" changed ") && !again.stderr.contains(" restarted "),
        "a converged re-run must change nothing:\n{}",
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
    let others: Vec<String> = st["components"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n != "interaction_processor")
        .map(|(_, c)| c["unit"].as_str().unwrap().to_string())
        .collect();
    assert!(others.len() >= 4, "{others:?}");
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
