//! issue 10, defect 4: a password made of any printable characters reaches the container's
//! environment byte-exact.
//!
//! Env files are read by `podman run --env-file`. Podman (containers/common `pkg/env.ParseFile`,
//! podman 4.3 on Debian 12 and again from podman 5) reads a file line by line: leading blanks of
//! a line are dropped, empty lines and lines starting with `#` are skipped, the name is what comes
//! before the first `=` and the value is everything after it, taken literally (no quotes, no `$`
//! expansion, no inline comment, trailing blanks kept). So omlboot writes values raw, and this test
//! reads the rendered files back with that same rule. (podman 4.8–4.9 briefly used a dotenv-style
//! parser that cuts a value at ` #`; no supported distribution ships it.)
//! When a local image is present, `real_podman_reads_the_values_back` also checks with podman.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Every printable ASCII character a password may hold, spaces inside.
const NASTY: &[(&str, &str)] = &[
    (
        "postgres_password",
        r#"p"q'r $HOME ${X} %s %% #not-a-comment \n\\ `id` ; & | < > ! ~ ^ * ? [ ] ( ) { } {{ x }} {% if %} = =="#,
    ),
    ("ami_password", r#"'single quoted'"#),
    ("s3_http_admin_pass", r#""double quoted""#),
    (
        "bucket_secret_key",
        r#"#starts-with-hash and ends with backslash \"#,
    ),
];

/// podman's `--env-file` reading, as in containers/common pkg/env (see the module comment).
fn podman_parse(text: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').expect("a line without =");
        env.insert(
            name.trim_start_matches([' ', '\t']).to_string(),
            value.to_string(),
        );
    }
    env
}

fn render(out: &Path) {
    let mut args = vec![
        "render".to_string(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--set".into(),
        "omni_ip_lan=10.0.0.5".into(),
        "--set".into(),
        "infra_env=lan".into(),
    ];
    for (k, v) in NASTY {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = omlboot(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn printable_passwords_are_written_byte_exact_for_podman() {
    let tmp = tempfile::tempdir().unwrap();
    render(tmp.path());
    // Which env variable carries which key, as the templates name them.
    let carriers: &[(&str, &str)] = &[
        ("PGPASSWORD", "postgres_password"),
        ("POSTGRES_PASSWORD", "postgres_password"),
        ("AMI_PASSWORD", "ami_password"),
        ("ARI_PASS", "ami_password"),
        ("MINIO_ROOT_PASSWORD", "s3_http_admin_pass"),
        ("AWS_SECRET_ACCESS_KEY", "bucket_secret_key"),
    ];
    let want: BTreeMap<&str, &str> = NASTY.iter().copied().collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(tmp.path().join("etc/default")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "env") {
            continue; // prometheus.yml lives there too
        }
        let env = podman_parse(&std::fs::read_to_string(&path).unwrap());
        for (var, key) in carriers {
            if let Some(got) = env.get(*var) {
                assert_eq!(got, want[key], "{var} in {}", path.display());
                *seen.entry(key).or_default() += 1;
            }
        }
    }
    for (key, _) in NASTY {
        assert!(
            seen.get(key).copied().unwrap_or(0) > 0,
            "{key} reached no env file: {seen:?}"
        );
    }
}

/// With a local image that has `env` (none is pulled: no network), podman itself reads the file.
#[test]
fn real_podman_reads_the_values_back() {
    let image = std::env::var("OMLBOOT_ENV_TEST_IMAGE")
        .unwrap_or_else(|_| "localhost/omlboot-envtest:latest".into());
    let have = std::process::Command::new("podman")
        .args(["image", "exists", &image])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!(
            "skipped: no local image {image} (set OMLBOOT_ENV_TEST_IMAGE to one that has `env`)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    render(tmp.path());
    let file = tmp.path().join("etc/default/asterisk.env");
    let o = std::process::Command::new("podman")
        .args(["run", "--rm", "--network=none", "--env-file"])
        .arg(&file)
        .args([&image, "env"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("OCI permission denied") {
        // A sandbox that forbids the runtime's setrlimit and the like: nothing to learn here.
        eprintln!("skipped: podman cannot start a container here: {err}");
        return;
    }
    assert!(o.status.success(), "{err}");
    let out = String::from_utf8(o.stdout).unwrap();
    let line = format!("PGPASSWORD={}", NASTY[0].1);
    assert!(
        out.lines().any(|l| l == line),
        "container env lacks {line:?}:\n{out}"
    );
    let line = format!("AMI_PASSWORD={}", NASTY[1].1);
    assert!(
        out.lines().any(|l| l == line),
        "container env lacks {line:?}:\n{out}"
    );
}
