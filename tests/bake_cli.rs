//! `omlboot bake` input handling: it needs a role, validates like every command, and changes nothing
//! on bad input. (The bake itself, with packages and images, runs in the VM suite: tests/e2e_bake.rs.)
mod common;
use common::*;

fn bake_in(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["bake", "--root", root.to_str().unwrap()];
    a.extend_from_slice(args);
    omlboot(&a)
}

fn assert_untouched(root: &std::path::Path) {
    let left: Vec<_> = walkdir(root);
    assert!(left.is_empty(), "bake wrote {left:?}");
}

fn walkdir(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn bake_without_role_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let o = bake_in(t.path(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--role"), "{}", stderr(&o));
    assert_untouched(t.path());
}

#[test]
fn bake_with_bad_image_reference_names_the_key() {
    let t = tempfile::tempdir().unwrap();
    let o = bake_in(
        t.path(),
        &["--role", "voice", "--set", "asterisk_img=Not An Image"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("asterisk_img"), "{}", stderr(&o));
    assert_untouched(t.path());
}

#[test]
fn bake_of_a_cluster_role_needs_no_peers_or_passwords() {
    // Validation passes without data_host/voice_host/application_host and passwords; the bake then
    // stops at a missing bundle before it changes anything.
    let t = tempfile::tempdir().unwrap();
    let o = bake_in(
        t.path(),
        &[
            "--role",
            "app",
            "--set",
            "skip_packages=true",
            "--set",
            "image_bundle=/nonexistent/bundle.tar",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("/nonexistent/bundle.tar"), "{err}");
    assert!(!err.contains("data_host"), "{err}");
    assert!(!t.path().join("usr/local/bin/omlboot").exists());
    assert!(!t.path().join("etc/systemd/system").exists());
}
