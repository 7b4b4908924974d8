//! The ssh destination against a private sshd on 127.0.0.1 (openssh-server is installed with apt-get
//! when missing; no system service is touched): a verified backup and a restore through it, an
//! unreachable destination, and a key the server does not accept.
mod backup_support;
use backup_support::*;
use omlboot::backup::dest::{ssh::Ssh, Destination};
use omlboot::backup::restore::{self, Request};
use omlboot::backup::{self as bk};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Sshd(Child);
impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A private sshd accepting `client_key` for root; returns it and its port.
fn sshd(dir: &Path, client_key: &Path) -> (Sshd, u16) {
    ensure("/usr/sbin/sshd", "openssh-server");
    std::fs::create_dir_all("/run/sshd").unwrap();
    keygen(&dir.join("host_key"));
    std::fs::copy(
        client_key.with_extension("pub"),
        dir.join("authorized_keys"),
    )
    .unwrap();
    let port = omlboot::backup::pg::free_port().unwrap();
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Sshd(child), port)
}

fn dest(port: u16, key: &Path, path: &str, known: &Path) -> Ssh {
    Ssh {
        user: "root".into(),
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        key_file: key.into(),
        known_hosts: known.into(),
        connect_timeout_s: 5,
    }
}

#[test]
fn backup_and_restore_over_ssh_and_its_faults() {
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("id_ed25519");
    keygen(&key);
    let (_sshd, port) = sshd(t.path(), &key);
    let remote = t.path().join("remote store");
    let d = dest(
        port,
        &key,
        remote.to_str().unwrap(),
        &t.path().join("known_hosts"),
    );

    // put/list/get/delete; temp names never listed.
    d.put_bytes(b"hello", "a/b.txt").unwrap();
    std::fs::write(remote.join("a/.c.txt.partial"), "half").unwrap();
    assert_eq!(d.list().unwrap(), vec!["a/b.txt"]);
    assert_eq!(d.get_bytes("a/b.txt").unwrap(), b"hello");
    d.delete("a/b.txt").unwrap();

    // A verified backup through ssh, restored back through ssh.
    let c = cluster();
    fill(&c.pg, 200);
    let vols = volumes(&t.path().join("vols"));
    let done = bk::run(
        &c.pg,
        &vols,
        &d,
        &spec(t.path().join("work")),
        1_709_622_489,
    )
    .unwrap();
    assert!(done.verified.as_ref().unwrap().ok, "{:?}", done.verified);
    assert!(remote.join(&done.manifest).is_file());
    psql(&c.pg, "omnileads", "TRUNCATE reportes_app_llamadalog");
    let services = FakeServices::default();
    let r = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&d),
        &Request {
            source: &done.name,
            discard_previous: true,
            writers: writers(),
            work: t.path().join("work"),
            root: t.path().to_path_buf(),
            now: 1_709_700_000,
        },
    );
    r.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rows(&c.pg, "reportes_app_llamadalog"), 200);

    // Wrong credentials: a key the server does not know.
    let other = t.path().join("other_key");
    keygen(&other);
    let bad = dest(
        port,
        &other,
        remote.to_str().unwrap(),
        &t.path().join("known_hosts"),
    );
    let mut sp = spec(t.path().join("work"));
    sp.verify = false;
    let e = bk::run(&c.pg, &vols, &bad, &sp, 1_709_800_000).unwrap_err();
    assert!(format!("{e:#}").contains("Permission denied"), "{e:#}");

    // Unreachable: nothing listens on the port.
    let closed = omlboot::backup::pg::free_port().unwrap();
    let gone = dest(closed, &key, "x", &t.path().join("known_hosts"));
    let e = bk::run(&c.pg, &vols, &gone, &sp, 1_709_800_000).unwrap_err();
    assert!(format!("{e:#}").contains("Connection refused"), "{e:#}");
    // Neither failure left a listed backup.
    assert_eq!(bk::list(&d).unwrap().len(), 1);
}
