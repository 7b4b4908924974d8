//! issue 10, item 5: a write under a full or read-only filesystem fails with an error naming the
//! file, leaves no partial or temp file, and the previous file intact. Needs root (mount); skips
//! with a message where mounting is not permitted.
mod common;
use common::*;
use omlboot::fsutil::{write_atomic, Written};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mount that is undone when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str], target: &Path) -> Option<Mount> {
    std::fs::create_dir_all(target).unwrap();
    let o = Command::new("mount").args(args).arg(target).output().ok()?;
    if o.status.success() {
        Some(Mount(target.to_path_buf()))
    } else {
        eprintln!(
            "skipped: cannot mount ({}): {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
        None
    }
}

/// `src` bind-mounted read-only on `dst` (util-linux ≥ 2.27 applies `ro` to the bind itself).
fn bind_ro(src: &Path, dst: &Path) -> Option<Mount> {
    std::fs::create_dir_all(dst).unwrap();
    let ok = Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(src)
        .arg(dst)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot bind-mount read-only");
        return None;
    }
    let m = Mount(dst.to_path_buf());
    if std::fs::write(dst.join(".probe"), b"").is_ok() {
        let _ = std::fs::remove_file(dst.join(".probe"));
        eprintln!("skipped: the bind mount is not read-only here");
        return None;
    }
    Some(m)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn full_filesystem_keeps_the_previous_file_and_no_temp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("small");
    let Some(_m) = mount(&["-t", "tmpfs", "-o", "size=64k", "tmpfs"], &dir) else {
        return;
    };
    let target = dir.join("django.env");
    assert_eq!(
        write_atomic(&target, b"OLD=1\n", 0o600).unwrap(),
        Written::Changed
    );
    // Fill what is left.
    let filler = vec![b'x'; 4096];
    let mut n = 0;
    while std::fs::write(dir.join(format!("fill{n}")), &filler).is_ok() {
        n += 1;
        assert!(n < 1000, "64k tmpfs never filled");
    }
    let before = names(&dir);
    let big = vec![b'y'; 32 * 1024];
    let err = write_atomic(&target, &big, 0o600).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&target.display().to_string()), "{msg}");
    assert!(msg.contains("No space left"), "{msg}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"OLD=1\n",
        "previous file changed"
    );
    assert_eq!(names(&dir), before, "a temp or partial file was left");
}

#[test]
fn read_only_filesystem_keeps_the_previous_file_and_no_temp() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let target_src = src.join("asterisk.env");
    write_atomic(&target_src, b"OLD=1\n", 0o600).unwrap();
    let ro = tmp.path().join("ro");
    let Some(_m) = bind_ro(&src, &ro) else {
        return;
    };
    let target = ro.join("asterisk.env");
    let err = write_atomic(&target, b"NEW=2\n", 0o600).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&target.display().to_string()), "{msg}");
    assert!(msg.contains("Read-only file system"), "{msg}");
    assert_eq!(std::fs::read(&target).unwrap(), b"OLD=1\n");
    assert_eq!(names(&src), vec!["asterisk.env".to_string()]);
}

/// Through the binary: `render --out` onto a read-only directory fails (not exit 0 or 2), names
/// the file it could not write, and leaves nothing behind.
#[test]
fn render_onto_read_only_dir_fails_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc/default")).unwrap();
    let ro = tmp.path().join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let Some(_m) = bind_ro(&src, &ro) else {
        return;
    };
    let o = omlboot(&[
        "render",
        "--out",
        ro.to_str().unwrap(),
        "--set",
        "omni_ip_lan=10.0.0.5",
        "--set",
        "infra_env=lan",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&ro.display().to_string()), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(
        entries(&src),
        1,
        "something was written: {:?}",
        tree(&src).keys()
    );
}
