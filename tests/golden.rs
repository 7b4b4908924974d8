//! Golden tests: the rendered tree for aio, data, voice and app (3-host cluster addresses) is checked in
//! under tests/golden/<case>/ with its modes in tests/golden/<case>.modes. Re-bless after an intended
//! change with `OMLBOOT_BLESS=1 cargo test --test golden` and review the diff.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

const CASES: &[(&str, &str, &str)] = &[
    ("aio", "tests/fixtures/config/aio.yaml", "aio"),
    ("data", "tests/fixtures/config/cluster.yaml", "data"),
    ("voice", "tests/fixtures/config/cluster.yaml", "voice"),
    ("app", "tests/fixtures/config/cluster.yaml", "app"),
];

fn render(config: &str, role: &str, out: &Path) {
    let o = omlboot(&[
        "render",
        "--config",
        repo(config).to_str().unwrap(),
        "--role",
        role,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "render failed: {}", stderr(&o));
}

fn modes_text(tree: &BTreeMap<String, (u32, Vec<u8>)>) -> String {
    tree.iter()
        .map(|(p, (m, _))| format!("{m:04o} {p}\n"))
        .collect()
}

fn check(case: &str, config: &str, role: &str) {
    let tmp = tempfile::tempdir().unwrap();
    render(config, role, tmp.path());
    let got = tree(tmp.path());
    let golden_dir = repo(&format!("tests/golden/{case}"));
    let modes_file = repo(&format!("tests/golden/{case}.modes"));
    if std::env::var_os("OMLBOOT_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&golden_dir);
        for (p, (_, content)) in &got {
            let dst = golden_dir.join(p);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::write(dst, content).unwrap();
        }
        std::fs::write(&modes_file, modes_text(&got)).unwrap();
        return;
    }
    let want = tree(&golden_dir);
    let want_names: Vec<&String> = want.keys().collect();
    let got_names: Vec<&String> = got.keys().collect();
    pretty_assertions::assert_eq!(
        want_names,
        got_names,
        "{case}: file set differs from tests/golden/{case}"
    );
    for (p, (_, content)) in &got {
        let w = String::from_utf8_lossy(&want[p].1);
        let g = String::from_utf8_lossy(content);
        pretty_assertions::assert_eq!(w, g, "{case}: {p} differs from golden");
    }
    let want_modes = std::fs::read_to_string(&modes_file).unwrap_or_default();
    pretty_assertions::assert_eq!(
        want_modes,
        modes_text(&got),
        "{case}: modes differ from {}",
        modes_file.display()
    );
}

#[test]
fn golden_aio() {
    check(CASES[0].0, CASES[0].1, CASES[0].2);
}
#[test]
fn golden_data() {
    check(CASES[1].0, CASES[1].1, CASES[1].2);
}
#[test]
fn golden_voice() {
    check(CASES[2].0, CASES[2].1, CASES[2].2);
}
#[test]
fn golden_app() {
    check(CASES[3].0, CASES[3].1, CASES[3].2);
}

/// Every file holding a secret value is 0600; every env file is 0600 whatever it holds.
#[test]
fn secrets_only_in_0600_files() {
    let secrets = [
        "Golden-Postgres-1",
        "Golden-Ami-1",
        "Golden-Minio-Root-1",
        "Golden-Bucket-Secret-1",
    ];
    for (_, config, role) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        render(config, role, tmp.path());
        let t = tree(tmp.path());
        assert!(!t.is_empty());
        for (p, (mode, content)) in &t {
            let text = String::from_utf8_lossy(content);
            if secrets.iter().any(|s| text.contains(s)) || p.ends_with(".env") {
                assert_eq!(*mode, 0o600, "{role}: {p} has mode {mode:04o}");
            }
        }
    }
}

/// The plan (table and JSON) never shows a secret.
#[test]
fn plan_output_has_no_secret() {
    for (_, config, role) in CASES {
        for format in ["table", "json"] {
            let o = omlboot(&[
                "plan",
                "--config",
                repo(config).to_str().unwrap(),
                "--role",
                role,
                "--format",
                format,
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let out = stdout(&o) + &stderr(&o);
            assert!(out.contains(".service"), "plan looks empty: {out}");
            for s in [
                "Golden-Postgres-1",
                "Golden-Ami-1",
                "Golden-Minio-Root-1",
                "Golden-Bucket-Secret-1",
            ] {
                assert!(!out.contains(s), "{role}/{format}: plan shows secret {s}");
            }
        }
    }
}

/// Rendering twice gives identical bytes and writes nothing the second time.
#[test]
fn render_is_deterministic_and_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    render(CASES[0].1, "aio", tmp.path());
    let first = tree(tmp.path());
    let o = omlboot(&[
        "render",
        "--config",
        repo(CASES[0].1).to_str().unwrap(),
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(stderr(&o).contains("0 written"), "{}", stderr(&o));
    assert_eq!(first, tree(tmp.path()));
}
