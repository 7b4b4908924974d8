//! Which files hold a secret comes from the values their templates read, not from searching the text:
//! a password that is also an ordinary word of the files (`omnileads`, the inventory's user name)
//! plans fine, and the files that really hold it are 0600.
mod common;
use common::*;

const WORD: &str = "omnileads";

fn plan_json(extra: &[&str]) -> serde_json::Value {
    let config = repo("tests/fixtures/config/aio.yaml");
    let mut args = vec![
        "plan",
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = omlboot(&args);
    assert_eq!(o.status.code(), Some(0), "plan failed: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn secret_files(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "file" && s["secret"] == true)
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_password_that_is_an_ordinary_word_plans_and_stays_in_0600_files() {
    let set = format!("postgres_password={WORD}");
    let plan = plan_json(&["--set", &set]);
    let secret = secret_files(&plan);
    let paths: Vec<&str> = secret.iter().map(|(p, _)| p.as_str()).collect();
    // The env files that pass the PostgreSQL password are secret; the MinIO unit, whose text has the
    // word in a URL, is not.
    assert!(paths.contains(&"/etc/default/postgres.env"), "{paths:?}");
    assert!(paths.contains(&"/etc/default/django.env"), "{paths:?}");
    assert!(
        !paths.contains(&"/etc/systemd/system/minio.service"),
        "{paths:?}"
    );
    for (p, mode) in &secret {
        assert_eq!(mode, "0600", "{p} holds a secret");
    }

    // On disk: every file holding the password (found by the renderer) is 0600, and the word alone
    // does not make a file secret.
    let out = tempfile::tempdir().unwrap();
    let config = repo("tests/fixtures/config/aio.yaml");
    let o = omlboot(&[
        "render",
        "--config",
        config.to_str().unwrap(),
        "--set",
        &set,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "render failed: {}", stderr(&o));
    let files = tree(out.path());
    for p in &paths {
        let (mode, _) = &files[p.trim_start_matches('/')];
        assert_eq!(*mode, 0o600, "{p}");
    }
    let (mode, text) = &files["etc/systemd/system/minio.service"];
    assert_eq!(*mode, 0o644);
    assert!(String::from_utf8_lossy(text).contains(WORD));
}

#[test]
fn a_template_that_puts_a_secret_in_a_world_readable_file_is_refused() {
    // A copy of units/ whose Prometheus config (0644) reads the MinIO root password: the plan must
    // refuse it (exit 1), naming the file and the key.
    let units = tempfile::tempdir().unwrap();
    copy_dir(&repo("units"), units.path());
    let unit = units.path().join("files/prometheus.yml.tera");
    let mut text = std::fs::read_to_string(&unit).unwrap();
    text.push_str("# {{ s3_http_admin_pass }}\n");
    std::fs::write(&unit, text).unwrap();
    let config = repo("tests/fixtures/config/aio.yaml");
    let o = omlboot(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--units",
        units.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("prometheus.yml") && err.contains("s3_http_admin_pass"),
        "{err}"
    );
}
