//! `omlboot detect` over fixture roots: NIC and private-IP choice, infra_env rules, warnings; and proof
//! that plan/render make no network call when the config fixes every address.
mod common;
use common::*;
use serde_json::Value;
use std::net::TcpListener;
use std::time::Duration;

fn detect(host: &str, sets: &[&str]) -> Value {
    let root = repo(&format!("tests/fixtures/hosts/{host}"));
    let mut args = vec![
        "detect",
        "--format",
        "json",
        "--root",
        root.to_str().unwrap(),
        "--set",
        "public_ip_echo_urls=",
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    let o = omlboot(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&o)))
}

#[test]
fn single_nic_lan_host() {
    let f = detect("lan-single", &[]);
    assert_eq!(f["os"]["family"], "apt");
    assert_eq!(f["os"]["version_id"], "12");
    assert_eq!(f["default_route_nic"], "ens18");
    assert_eq!(f["nic"], "ens18");
    assert_eq!(f["private_ip"], "192.168.10.44");
    assert_eq!(f["private_ip_source"], "default_route");
    assert_eq!(f["nics"][0]["ipv4"][0]["prefix"], 24);
    assert_eq!(f["public_ip"], Value::Null);
    assert_eq!(f["infra_env"], "lan");
    assert_eq!(f["infra_env_source"], "detected");
    assert_eq!(f["platform"], "unknown");
    assert_eq!(f["resources"]["cpus"], 4);
    assert_eq!(f["resources"]["memory_mib"], 7960);
}

#[test]
fn omni_nic_beats_default_route_and_bridges_are_virtual() {
    let f = detect("cloud-two-nics", &["omni_nic=eth1"]);
    assert_eq!(f["private_ip"], "10.116.0.7");
    assert_eq!(f["nic"], "eth1");
    assert_eq!(f["private_ip_source"], "omni_nic");
    let podman0 = f["nics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "podman0")
        .unwrap();
    assert_eq!(podman0["virtual"], true);
    assert_eq!(podman0["ipv4"][0]["address"], "10.88.0.1");
    assert_eq!(podman0["ipv4"][0]["prefix"], 16);
}

#[test]
fn explicit_omni_ip_lan_wins() {
    let f = detect(
        "cloud-two-nics",
        &["omni_ip_lan=10.116.0.7", "omni_nic=eth0"],
    );
    assert_eq!(f["private_ip"], "10.116.0.7");
    assert_eq!(f["nic"], "eth1");
    assert_eq!(f["private_ip_source"], "config");
}

#[test]
fn public_ip_on_a_nic_means_cloud() {
    let f = detect("cloud-two-nics", &["nat_ip_addr=203.0.113.25"]);
    assert_eq!(f["public_ip"], "203.0.113.25");
    assert_eq!(f["public_ip_on_nic"], true);
    assert_eq!(f["infra_env"], "cloud");
}

#[test]
fn public_ip_off_every_nic_means_nat() {
    let f = detect(
        "cloud-two-nics",
        &["nat_ip_addr=198.51.100.9", "omni_nic=eth1"],
    );
    assert_eq!(f["public_ip"], "198.51.100.9");
    assert_eq!(f["public_ip_on_nic"], false);
    assert_eq!(f["infra_env"], "nat");
}

#[test]
fn configured_infra_env_is_kept() {
    let f = detect(
        "cloud-two-nics",
        &["infra_env=hybrid", "nat_ip_addr=198.51.100.9"],
    );
    assert_eq!(f["infra_env"], "hybrid");
    assert_eq!(f["infra_env_source"], "config");
}

#[test]
fn problems_become_warnings() {
    let f = detect("cloud-two-nics", &["omni_ip_lan=10.9.9.9"]);
    assert!(
        f["warnings"]
            .to_string()
            .contains("10.9.9.9 is not configured on any NIC"),
        "{}",
        f["warnings"]
    );
    let f = detect("lan-single", &["omni_nic=eth7"]);
    assert!(
        f["warnings"]
            .to_string()
            .contains("omni_nic eth7 does not exist"),
        "{}",
        f["warnings"]
    );
    let f = detect("isolated", &[]);
    assert_eq!(f["private_ip"], Value::Null);
    assert!(
        f["warnings"]
            .to_string()
            .contains("set omni_ip_lan or omni_nic"),
        "{}",
        f["warnings"]
    );
}

#[test]
fn plan_without_a_private_ip_is_invalid() {
    let root = repo("tests/fixtures/hosts/isolated");
    let o = omlboot(&[
        "plan",
        "--root",
        root.to_str().unwrap(),
        "--set",
        "public_ip_echo_urls=",
        "--set",
        "infra_env=lan",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("omni_ip_lan"), "{}", stderr(&o));
}

#[test]
fn cluster_host_takes_its_address_from_the_cluster_keys() {
    let f = detect(
        "lan-single",
        &[
            "role=voice",
            "data_host=192.168.10.43",
            "voice_host=192.168.10.44",
            "application_host=192.168.10.45",
            "postgres_password=p12345678",
            "ami_password=a12345678",
            "s3_http_admin_pass=m12345678",
            "bucket_secret_key=b12345678",
        ],
    );
    assert_eq!(f["private_ip"], "192.168.10.44");
    assert_eq!(f["private_ip_source"], "config (voice_host)");
    assert_eq!(f["nic"], "ens18");
}

/// With omni_ip_lan, infra_env and nat_ip_addr in the config, plan and render call nothing: every
/// metadata and echo endpoint points at a listener here that must see no connection.
#[test]
fn plan_and_render_make_no_network_call_when_config_fixes_addresses() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = vec![format!("public_ip_echo_urls={url}/ip")];
    for p in ["aws", "gcp", "azure", "digitalocean", "oracle", "hetzner"] {
        sets.push(format!("metadata_url_{p}={url}"));
    }
    let cfg = repo("tests/fixtures/config/aio.yaml");
    for cmd in [
        vec!["plan"],
        vec!["render", "--out", tmp.path().to_str().unwrap()],
    ] {
        let mut args: Vec<&str> = cmd.clone();
        args.extend([
            "--config",
            cfg.to_str().unwrap(),
            "--root",
            "/nonexistent-root",
        ]);
        for s in &sets {
            args.extend(["--set", s.as_str()]);
        }
        let o = omlboot(&args);
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        listener.accept().is_err(),
        "plan/render connected to a metadata/echo endpoint"
    );
}

/// Serve `body` to each of `n` HTTP requests on 127.0.0.1; returns the base URL.
fn echo_server(body: &'static str, n: usize) -> String {
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// End to end through the binary: the echo service's answer decides nat vs cloud.
#[test]
fn echo_answer_decides_infra_env() {
    let url = echo_server("45.33.32.156\n", 1);
    let f = detect("lan-single", &[&format!("public_ip_echo_urls={url}/ip")]);
    assert_eq!(f["public_ip"], "45.33.32.156");
    assert_eq!(f["public_ip_source"], format!("echo:{url}/ip"));
    assert_eq!(f["infra_env"], "nat");
    // The same answer with infra_env=lan configured: no lookup at all.
    let f = detect(
        "lan-single",
        &["infra_env=lan", &format!("public_ip_echo_urls={url}/ip")],
    );
    assert_eq!(f["public_ip"], Value::Null);
    assert_eq!(f["infra_env"], "lan");
}
