//! aio: passwords left out are generated once (strong random), kept 0600, and reused by every re-run.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

const CONFIG: &str = "role: aio\nomni_ip_lan: 10.0.0.5\ninfra_env: lan\npublic_ip_echo_urls: []\n";

fn render(cfg: &Path, out: &Path, root: Option<&Path>) -> String {
    let mut args = vec![
        "render",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(r) = root {
        args.extend(["--root", r.to_str().unwrap()]);
    }
    let o = omlboot(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    stderr(&o)
}

fn store(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("var/lib/omlboot/secrets.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn generated_once_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = tmp.path().join("out");
    render(&cfg, &out, None);
    let first = store(&out);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        [
            "ami_password",
            "bucket_secret_key",
            "postgres_password",
            "s3_http_admin_pass"
        ]
    );
    for v in first.values() {
        assert_eq!(v.len(), 32);
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric()));
    }
    let distinct: std::collections::BTreeSet<_> = first.values().collect();
    assert_eq!(distinct.len(), 4, "secrets must differ from each other");
    let mode = std::fs::metadata(out.join("var/lib/omlboot/secrets.yaml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o600);
    let django = std::fs::read_to_string(out.join("etc/default/django.env")).unwrap();
    assert!(django.contains(&format!("PGPASSWORD={}", first["postgres_password"])));

    // Re-run: same values, nothing rewritten.
    let msg = render(&cfg, &out, None);
    assert!(msg.contains("0 written"), "{msg}");
    assert_eq!(store(&out), first);

    // A fresh output dir reading the host's store (--root) renders the same values too.
    let out2 = tmp.path().join("out2");
    render(&cfg, &out2, Some(&out));
    assert_eq!(store(&out2), first);

    // A different host generates different values.
    let out3 = tmp.path().join("out3");
    render(&cfg, &out3, None);
    assert_ne!(
        store(&out3)["postgres_password"],
        first["postgres_password"]
    );
}

#[test]
fn given_passwords_are_not_stored_and_plan_never_shows_generated_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!("{CONFIG}postgres_password: Given-Password-1\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    render(&cfg, &out, None);
    let s = store(&out);
    assert!(!s.contains_key("postgres_password"));
    assert_eq!(s.len(), 3);
    let o = omlboot(&[
        "plan",
        "--format",
        "json",
        "--config",
        cfg.to_str().unwrap(),
        "--root",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let plan = stdout(&o);
    for v in s.values() {
        assert!(!plan.contains(v.as_str()), "plan shows a generated secret");
    }
    assert!(!plan.contains("Given-Password-1"));
}
