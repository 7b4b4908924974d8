//! omlboot VM end-to-end suite. Plain `cargo test` runs only the fast checks at the bottom of this file; the VM
//! tests are `#[ignore]` and run with `tests/e2e/run.sh` (= `cargo test --test e2e --test e2e_apply --test e2e_bake --test e2e_reliability --test e2e_upgrade -- --ignored --test-threads=1 --nocapture`).
//! See tests/e2e/README.md.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{FailureKind, GuestSpec, Lab, Nic, UserData};
use serde_json::Value;

/// Budget for one guest's boot + cloud-init under TCG (typically 90-150 s on 2 cores).
const BOOT: Duration = Duration::from_secs(600);

const SMOKE_USER_DATA: &str = r#"#cloud-config
write_files:
  - path: /etc/omlboot-e2e/detect.yaml
    content: |
      public_ip_echo_urls: []
runcmd:
  - [sh, -ec, "mkdir -p /var/lib/omlboot-e2e && /usr/local/bin/omlboot detect --format json --config /etc/omlboot-e2e/detect.yaml > /var/lib/omlboot-e2e/detect.json"]
"#;

/// Smoke test: `omlboot detect --format json` in a fresh guest agrees with the guest's real network.
#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh"]
fn smoke_detect_matches_guest_network() {
    let lab = Lab::boot_one(GuestSpec::new(
        "smoke",
        UserData::cloud_config(SMOKE_USER_DATA),
    ))
    .expect("boot");
    let g = &lab.guests[0];
    g.expect_cloud_init(BOOT);

    let raw = g
        .read_file("/var/lib/omlboot-e2e/detect.json")
        .unwrap()
        .expect("detect.json written by runcmd");
    let detect: Value = serde_json::from_str(raw.trim())
        .unwrap_or_else(|e| panic!("detect output is not JSON ({e}): {raw}"));
    eprintln!("omlboot detect: {detect}");

    // The guest's real network, from the same guest.
    let addrs: Value = serde_json::from_str(&g.sh("ip -j -4 addr show")).unwrap();
    let routes: Value = serde_json::from_str(&g.sh("ip -j -4 route show default")).unwrap();
    let route_dev = routes
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["dev"].as_str())
        .map(String::from);
    let global: Vec<(String, String)> = addrs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            let name = i["ifname"].as_str().unwrap_or("").to_string();
            i["addr_info"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["scope"] == "global")
                .map(move |a| (name.clone(), a["local"].as_str().unwrap_or("").to_string()))
        })
        .collect();
    eprintln!("guest: global IPv4 {global:?}, default route via {route_dev:?}");
    assert!(!global.is_empty(), "guest has no global IPv4 address");

    let nic = detect["nic"].as_str().expect("detect.nic is a string");
    let ip = detect["private_ip"]
        .as_str()
        .expect("detect.private_ip is a string");
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "private_ip {ip:?} is not dotted IPv4"
    );
    assert!(
        global.iter().any(|(n, a)| n == nic && a == ip),
        "detect says {nic}/{ip}, guest has {global:?}"
    );
    match &route_dev {
        Some(dev) => {
            assert_eq!(
                detect["default_route_nic"].as_str(),
                Some(dev.as_str()),
                "default_route_nic"
            );
            assert_eq!(
                nic, dev,
                "with one NIC holding the default route, that NIC is the one to use"
            );
        }
        None => assert!(
            detect["default_route_nic"].is_null(),
            "no default route in the guest, detect says {}",
            detect["default_route_nic"]
        ),
    }
    assert_eq!(
        detect["infra_env"], "lan",
        "qemu user network, restrict=on, no public IP anywhere"
    );
}

/// The harness reports a user-data command that exits 1 as a provisioning failure, serial log attached.
#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh"]
fn failing_runcmd_is_reported_with_serial_log() {
    let ud = "#cloud-config\nruncmd:\n  - echo E2E-FAILING-CASE this runcmd exits 1 on purpose\n  - exit 1\n";
    let lab = Lab::boot_one(GuestSpec::new("failing", UserData::cloud_config(ud))).expect("boot");
    let g = &lab.guests[0];
    let failure = match g.wait_cloud_init(BOOT) {
        Ok(ci) => panic!(
            "a runcmd that exits 1 was reported as success: {}",
            ci.status_long
        ),
        Err(f) => f,
    };
    let report = failure.to_string();
    eprintln!(
        "==== the failure report the harness produced (expected) ====\n{report}\n==== end ===="
    );
    assert_eq!(failure.kind, FailureKind::CloudInitError, "{report}");
    let errors = failure
        .result_json
        .as_ref()
        .and_then(|r| r["v1"]["errors"].as_array().cloned())
        .unwrap_or_default();
    assert!(!errors.is_empty(), "result.json lists the error: {report}");
    assert!(
        failure
            .status_long
            .as_deref()
            .unwrap_or("")
            .contains("error"),
        "status --long says error: {report}"
    );
    assert!(
        failure.serial_log.contains("E2E-FAILING-CASE"),
        "the runcmd output is in the serial log"
    );
    assert!(
        report.contains("---- serial log") && report.contains("E2E-FAILING-CASE"),
        "the report carries the serial log"
    );
    assert!(
        failure.serial_log.contains("Cloud-init v."),
        "serial log holds cloud-init's own lines"
    );
    // The usual test-side call turns the same failure into a panic whose message is the report.
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        g.expect_cloud_init(Duration::from_secs(60))
    }))
    .expect_err("expect_cloud_init must panic");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("provisioning failed") && msg.contains("E2E-FAILING-CASE"),
        "panic message carries the serial log"
    );
}

/// The stand-in images work in the guest both ways: pulled from the in-guest registry and loaded from the bundle;
/// the real servers (postgres, redis, nginx) serve, the stand-ins bind their ports and refuse a missing env.
#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh"]
fn standins_from_registry_and_bundle() {
    let lab = Lab::boot_one(GuestSpec::new(
        "standins",
        UserData::cloud_config("#cloud-config\n{}\n"),
    ))
    .expect("boot");
    let g = &lab.guests[0];
    g.expect_cloud_init(BOOT);
    let t = Instant::now();

    // (a) registry on the guest's loopback.
    let reg = g
        .wait_unit_active("docker-registry.service", Duration::from_secs(60))
        .unwrap();
    assert_eq!(reg.sub_state, "running");
    let catalog = g.sh("curl -sf http://127.0.0.1:5000/v2/_catalog");
    assert!(
        catalog.contains("omnileads/omlapp") && catalog.contains("library/postgres"),
        "{catalog}"
    );
    assert!(
        g.sh("ss -Htln 'sport = :5000'").contains("127.0.0.1:5000"),
        "registry bound to loopback only"
    );
    g.sh("podman pull -q localhost:5000/omnileads/omlapp:e2e localhost:5000/library/postgres:e2e localhost:5000/omnileads/nginx:e2e");

    // (b) the offline bundle.
    let index: Value =
        serde_json::from_str(&g.sh("tar -xOf /mnt/e2e/standins-bundle.tar index.json")).unwrap();
    assert_eq!(index["images"].as_array().unwrap().len(), 20, "{index}");
    g.sh("mkdir -p /tmp/b && tar -xf /mnt/e2e/standins-bundle.tar -C /tmp/b archives/websockets.oci.tar archives/redis.oci.tar");
    g.sh("podman load -q -i /tmp/b/archives/websockets.oci.tar && podman load -q -i /tmp/b/archives/redis.oci.tar");
    g.sh("podman image exists localhost:5000/omnileads/websockets:e2e && podman image exists localhost:5000/omnileads/redis:e2e");

    // PostgreSQL honours POSTGRES_USER/PASSWORD/DB like the official image; a client logs in with the password.
    g.write_file(
        "/etc/default/postgres.env",
        b"POSTGRES_USER=omnileads\nPOSTGRES_PASSWORD=e2e-secret\nPOSTGRES_DB=omnileads\nTZ=UTC\n",
    )
    .unwrap();
    g.sh("podman run -d --name pg --network=host --env-file=/etc/default/postgres.env localhost:5000/library/postgres:e2e postgres -c listen_addresses=127.0.0.1");
    let psql = "podman run --rm --network=host -e PGPASSWORD=e2e-secret --entrypoint psql localhost:5000/library/postgres:e2e -h 127.0.0.1 -U omnileads -d omnileads -tAc 'select current_user'";
    let who = wait_output(g, psql, Duration::from_secs(120));
    assert_eq!(who.trim(), "omnileads");
    let bad = g.exec("podman run --rm --network=host -e PGPASSWORD=wrong --entrypoint psql localhost:5000/library/postgres:e2e -h 127.0.0.1 -U omnileads -d omnileads -tAc 'select 1'").unwrap();
    assert_ne!(bad.code, 0, "a wrong password must be refused");

    // Redis and nginx: the real servers.
    g.write_file(
        "/etc/default/redis.env",
        b"REDISGEARS_VERSION=1.0.9\nBIND_IP=127.0.0.1\n",
    )
    .unwrap();
    g.sh("podman run -d --name redis --network=host --env-file=/etc/default/redis.env localhost:5000/omnileads/redis:e2e");
    assert_eq!(
        wait_output(
            g,
            "podman exec redis redis-cli -h 127.0.0.1 ping",
            Duration::from_secs(60)
        )
        .trim(),
        "PONG"
    );
    g.write_file(
        "/etc/default/nginx.env",
        b"DJANGO_HOSTNAME=localhost\nDAPHNE_HOSTNAME=localhost\nKAMAILIO_HOSTNAME=localhost\nWEBSOCKETS_HOSTNAME=localhost\nWSGI_PORT=8099\nASGI_PORT=8098\nKAMAILIO_PORT=14443\nWEBSOCKETS_PORT=8000\nENV=prodenv\n",
    )
    .unwrap();
    g.sh("podman run -d --name nginx --network=host --env-file=/etc/default/nginx.env localhost:5000/omnileads/nginx:e2e");
    assert!(wait_output(
        g,
        "curl -sfk https://127.0.0.1/e2e-standin",
        Duration::from_secs(60)
    )
    .contains("e2e-standin component=nginx"));

    // A stand-in refuses loudly when a required variable is missing, or on a command the real image would not run.
    let o = g.exec("podman run --rm --network=host -e UWSGI_PORT=8099 localhost:5000/omnileads/omlapp:e2e /opt/omnileads/bin/init_uwsgi.sh").unwrap();
    assert_eq!(o.code, 78, "{o:?}");
    assert!(
        o.stderr
            .contains("FATAL: missing required environment variable(s): PGHOST"),
        "{o:?}"
    );
    let o = g
        .exec("podman run --rm --network=host localhost:5000/omnileads/omlapp:e2e /bin/true")
        .unwrap();
    assert_eq!(o.code, 64, "{o:?}");

    // A unit shaped like the real ones (reference §2.1) runs a stand-in; the assertion helpers see it.
    g.write_file(
        "/etc/default/websockets.env",
        b"BIND_ADDRESS=127.0.0.1:8000\nREDIS_HOST=redis://127.0.0.1\nEVENT_LOOP=uvloop\n",
    )
    .unwrap();
    g.write_file(
        "/etc/systemd/system/websockets.service",
        WEBSOCKETS_UNIT.as_bytes(),
    )
    .unwrap();
    g.sh("systemctl daemon-reload && systemctl enable --now websockets.service");
    let st = g
        .wait_unit_active("websockets.service", Duration::from_secs(120))
        .unwrap();
    assert_eq!(
        (
            st.active_state.as_str(),
            st.sub_state.as_str(),
            st.n_restarts
        ),
        ("active", "running", 0),
        "{st:?}"
    );
    assert!(!st.active_enter_timestamp.is_empty());
    assert_eq!(g.is_enabled("websockets.service").unwrap(), "enabled");
    let f = g.file_stat("/etc/default/websockets.env").unwrap().unwrap();
    assert_eq!(
        (f.mode, f.owner.as_str(), f.kind.as_str()),
        (0o644, "root", "regular file")
    );
    assert!(g
        .container_names()
        .unwrap()
        .contains(&"oml-websockets-server".to_string()));
    assert!(wait_output(
        g,
        "curl -sf http://127.0.0.1:8000/",
        Duration::from_secs(30)
    )
    .contains("component=websockets"));
    let journal = g.journal("websockets.service", 50).unwrap();
    assert!(
        journal.contains("env BIND_ADDRESS=127.0.0.1:8000") && journal.contains("ready"),
        "{journal}"
    );
    eprintln!("stand-in checks took {:.0?} after cloud-init", t.elapsed());
}

const WEBSOCKETS_UNIT: &str = "[Unit]
Description=Podman websockets.service (e2e stand-in check)
Wants=network-online.target
After=network-online.target
RequiresMountsFor=%t/containers

[Service]
Environment=PODMAN_SYSTEMD_UNIT=%n
Restart=on-failure
TimeoutStopSec=70
ExecStartPre=/bin/rm -f %t/%n.ctr-id
ExecStart=/usr/bin/podman run --cidfile=%t/%n.ctr-id --cgroups=no-conmon --sdnotify=conmon --replace --detach --network=host --log-driver=journald --env-file=/etc/default/websockets.env --name=oml-websockets-server --rm localhost:5000/omnileads/websockets:e2e
ExecStop=/usr/bin/podman stop --ignore --cidfile=%t/%n.ctr-id
ExecStopPost=/usr/bin/podman rm -f --ignore --cidfile=%t/%n.ctr-id
Type=notify
NotifyAccess=all

[Install]
WantedBy=default.target
";

/// Polls a guest command until it exits 0; returns its stdout.
fn wait_output(g: &harness::Guest, cmd: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let o = g.exec(cmd).unwrap();
        if o.ok() {
            return o.stdout;
        }
        if Instant::now() >= deadline {
            panic!("`{cmd}` still failing after {timeout:?}: {o:?}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

// ---- fast checks (plain `cargo test`) ----

#[test]
fn base64_roundtrip() {
    use harness::qga::{b64_decode, b64_encode};
    for s in ["", "a", "ab", "abc", "abcd", "hello world\n\u{1}\u{ff}"] {
        assert_eq!(b64_decode(&b64_encode(s.as_bytes())), s.as_bytes());
    }
    assert_eq!(b64_encode(b"hello"), "aGVsbG8=");
    assert_eq!(b64_decode("aGVsbG8="), b"hello");
}

#[test]
fn seed_documents() {
    let nc = harness::seed::network_config(
        &[
            Nic::User,
            Nic::Private {
                address: "10.77.0.11/24".into(),
                gateway: Some("10.77.0.1".into()),
            },
        ],
        &["52:54:00:e2:00:00".into(), "52:54:00:e2:00:01".into()],
        &["enp0s3".into(), "enp0s4".into()],
    );
    assert!(nc.starts_with("version: 1\n"));
    assert!(
        nc.contains("gateway: 10.0.2.2")
            && nc.contains("address: 10.77.0.11/24")
            && nc.contains("gateway: 10.77.0.1")
    );
    let ud = UserData::with_overrides(
        "#cloud-config\nruncmd: [a]\n",
        &["#cloud-config\nruncmd: [b]\n"],
    )
    .render();
    assert!(ud.starts_with("Content-Type: multipart/mixed"));
    assert_eq!(ud.matches("Content-Type: text/cloud-config").count(), 2);
    assert!(ud.contains("merge_how") && ud.trim_end().ends_with("--"));
}

#[test]
fn standin_spec_covers_every_img_variable() {
    let dir = harness::artifacts::e2e_dir().join("standins");
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("components.json")).unwrap())
            .unwrap();
    let overrides = std::fs::read_to_string(dir.join("image-overrides.yaml")).unwrap();
    let wanted = [
        "omnileads_img",
        "nginx_img",
        "websockets_img",
        "kamailio_img",
        "astami_img",
        "fastagi_img",
        "asterisk_img",
        "asterisk_retrieve_conf_img",
        "interaction_processor_img",
        "rtpengine_img",
        "redis_img",
        "rabbitmq_img",
        "postgres_img",
        "minio_img",
        "prometheus_img",
        "prometheus_node_exp_img",
        "prometheus_podman_exp_img",
        "postgres_prometheus_img",
        "redis_prometheus_img",
        "promtail_img",
    ];
    let images = spec["images"].as_array().unwrap();
    for v in wanted {
        let img = images
            .iter()
            .find(|i| i["img_vars"].as_array().unwrap().iter().any(|x| x == v))
            .unwrap_or_else(|| panic!("no stand-in for {v}"));
        let r = img["ref"].as_str().unwrap();
        assert!(
            r.starts_with("localhost:5000/") && r.ends_with(":e2e"),
            "{r}"
        );
        assert!(
            overrides.lines().any(|l| l == format!("{v}: {r}")),
            "image-overrides.yaml out of date for {v} (run mkimages.py --overrides-only)"
        );
        assert!(!img["modes"].as_array().unwrap().is_empty());
    }
}
