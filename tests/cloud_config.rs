//! The shipped user-data files: each is a #cloud-config that writes a valid omlboot config 0600 and runs
//! omlboot. (`cloud-init schema` runs on them in .ci/integrations.sh; the VM suite boots them.)
mod common;
use common::*;

#[test]
fn every_user_data_carries_a_valid_config() {
    let dir = repo("cloud-config");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("#cloud-config\n"),
            "{}: must start with #cloud-config",
            p.display()
        );
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let files = doc["write_files"].as_sequence().expect("write_files");
        let cfg = files
            .iter()
            .find(|f| f["path"] == "/etc/omlboot/config.yaml")
            .unwrap_or_else(|| panic!("{}: no /etc/omlboot/config.yaml", p.display()));
        assert_eq!(
            cfg["permissions"].as_str(),
            Some("0600"),
            "{}: config must be 0600",
            p.display()
        );
        let runcmd = serde_yaml_ng::to_string(&doc["runcmd"]).unwrap();
        assert!(
            runcmd.contains("/usr/local/bin/omlboot") && runcmd.contains("run"),
            "{}: runcmd must run omlboot",
            p.display()
        );

        let tmp = tempfile::tempdir().unwrap();
        let cfg_path = tmp.path().join("config.yaml");
        std::fs::write(&cfg_path, cfg["content"].as_str().unwrap()).unwrap();
        let o = omlboot(&["validate", "--config", cfg_path.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
        // And it plans, once the address detection would have filled in the host's IP.
        let ip = if text.contains("role: voice") {
            "10.10.10.12"
        } else if text.contains("role: data") {
            "10.10.10.11"
        } else {
            "10.10.10.13"
        };
        let o = omlboot(&[
            "plan",
            "--config",
            cfg_path.to_str().unwrap(),
            "--set",
            &format!("omni_ip_lan={ip}"),
            "--set",
            "infra_env=lan",
            "--root",
            tmp.path().to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
    }
    assert!(
        seen >= 5,
        "expected the aio, data, voice, app and aio-fetch user-data, found {seen}"
    );
}
