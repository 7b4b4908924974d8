//! The image back end against real parts: Debian's `docker-registry` serving on 127.0.0.1 and the
//! host's podman. Every test works on its own image store (`--root/--runroot` in a temp dir, vfs
//! driver) so the host's store is never touched and tests can run in parallel.
//!
//! Test images are built without network: `podman import` of a one-file tar, pushed to the test
//! registry from a separate seed store, so the store under test starts empty.
//!
//! Needs root-capable podman, `docker-registry` and `htpasswd` (apache2-utils); `tools()` installs
//! the missing ones with apt-get and fails with a clear message if it cannot.
use omlboot::apply::images::{self, FailKind, ImageOptions, ImageOutcome, BUNDLE_INDEX};
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const USER: &str = "omluser";
const PASSWORD: &str = "s3cret-pw!";

/// Install podman, docker-registry and htpasswd if missing (once per test binary).
fn tools() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let want = [
            ("podman", "podman"),
            ("docker-registry", "docker-registry"),
            ("htpasswd", "apache2-utils"),
        ];
        let missing: Vec<&str> = want
            .iter()
            .filter(|(bin, _)| !on_path(bin))
            .map(|(_, pkg)| *pkg)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        eprintln!("installing test tools: {missing:?}");
        let out = Command::new("apt-get")
            .args([
                "-y",
                "-q",
                "-o",
                "DPkg::Lock::Timeout=300",
                "install",
                "--no-install-recommends",
            ])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "apt-get install {missing:?} failed (these tests need them, and root):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    if let Err(e) = r {
        panic!("test setup: {e}");
    }
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A docker-registry process on 127.0.0.1, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Registry {
    /// Storage and config live in `dir` (so a registry can be restarted on the same data).
    fn start(dir: &Path, port: u16, auth: bool) -> Registry {
        tools();
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        );
        if auth {
            let out = Command::new("htpasswd")
                .args(["-B", "-b", "-n", USER, PASSWORD])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.join("htpasswd"), out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: omlboot-test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join(format!("registry-{port}.log"))).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "docker-registry did not listen on 127.0.0.1:{port}; log in {}",
                reg.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private podman image store.
struct Store {
    dir: TempDir,
}

impl Store {
    fn new() -> Store {
        tools();
        Store {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn args(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            "--root".into(),
            d.join("root").display().to_string(),
            "--runroot".into(),
            d.join("run").display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    fn opts(&self) -> ImageOptions {
        ImageOptions {
            extra_args: self.args(),
            tls_verify: false,
            backoff: Duration::from_millis(200),
            tmp_dir: self.dir.path().to_path_buf(),
            ..ImageOptions::default()
        }
    }

    fn podman(&self, args: &[&str]) -> Output {
        let out = Command::new("podman")
            .args(self.args())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Make a tiny distinct image named `reference` (one file whose content is the name).
    fn make_image(&self, reference: &str) -> String {
        let src = self.dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let tarball = src.join("rootfs.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
        let body = format!("omlboot test image {reference}\n");
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "hello.txt", body.as_bytes()).unwrap();
        b.finish().unwrap();
        drop(b);
        let out = self.podman(&["import", "--quiet", tarball.to_str().unwrap(), reference]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("sha256:")
            .to_string()
    }

    async fn id(&self, reference: &str) -> Option<String> {
        self.opts().image_id(reference).await
    }
}

fn b64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A podman auth file for `host` with `user:password`.
fn auth_file(dir: &Path, name: &str, host: &str, password: &str) -> PathBuf {
    let p = dir.join(name);
    let auth = b64(format!("{USER}:{password}").as_bytes());
    std::fs::write(
        &p,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    p
}

/// Push images named `names` (e.g. "a:1") to `registry` under omlboot-test/, from a throwaway
/// store. Returns (reference, image id) pairs.
fn seed(registry: &Registry, names: &[&str], auth: Option<&Path>) -> Vec<(String, String)> {
    let seed = Store::new();
    names
        .iter()
        .map(|n| {
            let reference = format!("{}/omlboot-test/{n}", registry.host());
            let id = seed.make_image(&reference);
            let mut args = vec!["push", "--quiet", "--tls-verify=false"];
            let auth_s;
            if let Some(a) = auth {
                auth_s = a.display().to_string();
                args.extend(["--authfile", &auth_s]);
            }
            args.push(&reference);
            seed.podman(&args);
            (reference, id)
        })
        .collect()
}

fn refs(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().map(|(r, _)| r.clone()).collect()
}

#[tokio::test]
async fn pull_then_present() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path(), free_port(), false);
    let seeded = seed(&reg, &["a:1"], None);
    let store = Store::new();
    let opts = store.opts();
    let r = refs(&seeded);

    assert_eq!(opts.image_id(&r[0]).await, None, "store starts empty");
    let first = images::ensure(&r, &opts).await;
    assert_eq!(
        first,
        vec![(
            r[0].clone(),
            ImageOutcome::Pulled {
                id: seeded[0].1.clone(),
                attempts: 1
            }
        )]
    );
    assert_eq!(
        opts.image_id(&r[0]).await.as_deref(),
        Some(seeded[0].1.as_str())
    );

    // Second run: present, nothing fetched. Stop the registry first so a pull could not succeed.
    drop(reg);
    let second = images::ensure(&[r[0].clone(), r[0].clone()], &opts).await;
    assert_eq!(
        second,
        vec![(
            r[0].clone(),
            ImageOutcome::Present {
                id: seeded[0].1.clone()
            }
        )],
        "duplicates are handled once"
    );
    let json = serde_json::to_value(&second[0].1).unwrap();
    assert_eq!(json["outcome"], "present");
}

#[tokio::test]
async fn unknown_tag_is_not_found_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path(), free_port(), false);
    seed(&reg, &["a:1"], None);
    let store = Store::new();
    let opts = ImageOptions {
        backoff: Duration::from_secs(5),
        ..store.opts()
    };
    let missing = format!("{}/omlboot-test/a:does-not-exist", reg.host());
    let started = Instant::now();
    let out = images::ensure(std::slice::from_ref(&missing), &opts).await;
    match &out[0].1 {
        ImageOutcome::Failed {
            kind: FailKind::NotFound,
            attempts: 1,
            message,
        } => assert!(
            message.contains(&missing) && message.contains("manifest unknown"),
            "{message}"
        ),
        other => panic!("want NotFound after one attempt, got {other:?}"),
    }
    // A 5 s backoff would show here had it retried.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn auth_required() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path(), free_port(), true);
    let good = auth_file(dir.path(), "good.json", &reg.host(), PASSWORD);
    let bad = auth_file(dir.path(), "bad.json", &reg.host(), "wrong-password");
    let seeded = seed(&reg, &["private:1"], Some(&good));
    let r = refs(&seeded);
    let store = Store::new();

    for auth in [None, Some(bad.clone())] {
        let opts = ImageOptions {
            auth_file: auth.clone(),
            ..store.opts()
        };
        let out = images::ensure(&r, &opts).await;
        match &out[0].1 {
            ImageOutcome::Failed {
                kind: FailKind::Auth,
                attempts: 1,
                message,
            } => {
                assert!(message.contains("refused access"), "{message}");
                assert!(!message.contains(PASSWORD) && !message.contains("wrong-password"));
                if let Some(p) = &auth {
                    assert!(message.contains(&p.display().to_string()), "{message}");
                }
            }
            other => panic!("auth {auth:?}: want Failed Auth, got {other:?}"),
        }
    }
    let opts = ImageOptions {
        auth_file: Some(good),
        ..store.opts()
    };
    let out = images::ensure(&r, &opts).await;
    assert_eq!(
        out[0].1,
        ImageOutcome::Pulled {
            id: seeded[0].1.clone(),
            attempts: 1
        }
    );
}

/// A 127.0.0.1 front for the registry that fails the first `fail` pull attempts with 503 and
/// forwards everything else (TLS probes included) byte for byte. An attempt is counted by its
/// `GET /v2/` ping; podman follows a failed ping with `GET /v1/_ping`, which also gets a 503
/// while attempts are still being failed.
async fn flaky_front(backend: u16, fail: usize) -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let failed = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&failed);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if conn.peek(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                let tls = first[0] == 0x16;
                if !tls && count.load(Ordering::SeqCst) < fail {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if buf.starts_with(b"GET /v2/ ") {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = conn
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
                if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                }
            });
        }
    });
    (port, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_503_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path(), free_port(), false);
    let seeded = seed(&reg, &["flaky:1"], None);
    let (front, refused) = flaky_front(reg.port, 2).await;
    let reference = format!("127.0.0.1:{front}/omlboot-test/flaky:1");
    let store = Store::new();
    let out = images::ensure(&[reference], &store.opts()).await;
    assert_eq!(
        out[0].1,
        ImageOutcome::Pulled {
            id: seeded[0].1.clone(),
            attempts: 3
        },
        "two 503s, then success"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_not_yet_listening_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let seeded = {
        let reg = Registry::start(dir.path(), port, false);
        seed(&reg, &["late:1"], None)
    }; // registry stopped: connections are refused now
    let store = Store::new();
    let opts = ImageOptions {
        backoff: Duration::from_millis(500),
        ..store.opts()
    };
    let r = refs(&seeded);
    let target = r[0].clone();
    let pull = tokio::spawn(async move { images::ensure(&r, &opts).await });
    // podman 4.3 retries refused connections itself for ~3 s (3 × 1 s) before it gives up; start
    // the registry once that first `podman pull` has exited, so the first of *our* attempts fails
    // and a later one succeeds (a fixed sleep lost the race on a loaded machine).
    let watched = target.clone();
    let first = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = None;
        loop {
            let now = pulls_of(&watched);
            match seen {
                None => seen = now.first().copied(),
                Some(pid) if !now.contains(&pid) => return true,
                Some(_) => {}
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(first, "the first podman pull of {target:?} never ended");
    let path = dir.path().to_path_buf();
    let reg = tokio::task::spawn_blocking(move || Registry::start(&path, port, false))
        .await
        .unwrap();
    let out = pull.await.unwrap();
    match &out[0].1 {
        ImageOutcome::Pulled { id, attempts } => {
            assert_eq!(id, &seeded[0].1);
            assert!(*attempts >= 2, "attempts {attempts}");
        }
        other => panic!("want Pulled after retries, got {other:?}"),
    }
    drop(reg);
}

/// Pids of the running `podman pull` processes of `reference` (from /proc).
fn pulls_of(reference: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let has = |w: &str| args.contains(&w.as_bytes());
        if args.first().is_some_and(|a| a.ends_with(b"podman")) && has("pull") && has(reference) {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test]
async fn parallel_pulls_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path(), free_port(), false);
    let seeded = seed(&reg, &["p1:1", "p2:1", "p3:1", "p4:1"], None);
    let store = Store::new();
    // A wrapper around the real podman that logs when each pull starts and ends.
    let log = dir.path().join("pulls.log");
    let wrapper = dir.path().join("podman-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *' --help '*) exec podman \"$@\";; *' pull '*) ;; *) exec podman \"$@\";; esac\n\
             echo \"S $(date +%s%N)\" >> {log}\npodman \"$@\"; rc=$?\necho \"E $(date +%s%N)\" >> {log}\nexit $rc\n",
            log = log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts = ImageOptions {
        podman: wrapper,
        parallel: 2,
        ..store.opts()
    };
    let out = images::ensure(&refs(&seeded), &opts).await;
    assert_eq!(out.len(), 4);
    for ((r, o), (want_r, want_id)) in out.iter().zip(&seeded) {
        assert_eq!(r, want_r, "results keep input order");
        assert_eq!(
            o,
            &ImageOutcome::Pulled {
                id: want_id.clone(),
                attempts: 1
            }
        );
    }
    let mut events: Vec<(u128, i32)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, t) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), if k == "S" { 1 } else { -1 })
        })
        .collect();
    events.sort_by_key(|&(t, d)| (t, d)); // an end before a start at the same instant
    let (mut now, mut max) = (0, 0);
    for (_, d) in &events {
        now += d;
        max = max.max(now);
    }
    assert_eq!(events.len(), 8, "four pulls");
    assert!(max <= 2, "at most 2 pulls at once, saw {max}");
    eprintln!("max concurrent pulls: {max}");
}

#[tokio::test]
async fn bad_references_fail_cleanly() {
    let store = Store::new();
    let out = images::ensure(&["--all".to_string(), "bad ref!".into()], &store.opts()).await;
    for (_, o) in out {
        assert!(
            matches!(
                o,
                ImageOutcome::Failed {
                    kind: FailKind::Other,
                    ..
                }
            ),
            "{o:?}"
        );
    }
    let missing_podman = ImageOptions {
        podman: "/nonexistent/podman".into(),
        ..store.opts()
    };
    let out = images::ensure(&["localhost/x:1".to_string()], &missing_podman).await;
    assert!(
        matches!(&out[0].1, ImageOutcome::Failed { kind: FailKind::Other, message, .. } if message.contains("/nonexistent/podman")),
        "{out:?}"
    );
    assert_eq!(
        images::image_id(Path::new("/nonexistent/podman"), "x").await,
        None
    );
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(p).unwrap();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Build a bundle the documented way: `podman save` per image, an index, `tar -cf`.
fn build_bundle(dir: &Path, index: &serde_json::Value, files: &[&str], name: &str) -> PathBuf {
    std::fs::write(
        dir.join(BUNDLE_INDEX),
        serde_json::to_vec_pretty(index).unwrap(),
    )
    .unwrap();
    let bundle = dir.join(name);
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(&bundle)
        .arg(BUNDLE_INDEX)
        .args(files)
        .status()
        .unwrap();
    assert!(st.success());
    bundle
}

#[tokio::test]
async fn offline_bundle_loads_then_is_present() {
    let seed = Store::new();
    let work = tempfile::tempdir().unwrap();
    let a = "localhost/omlboot-test/bundle-a:1";
    let b = "localhost/omlboot-test/bundle-b:1";
    let c = "registry.example/omlboot-test/bundle-c:1";
    let (ida, idb, idc) = (seed.make_image(a), seed.make_image(b), seed.make_image(c));
    let wd = work.path();
    seed.podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        wd.join("a.tar").to_str().unwrap(),
        a,
    ]);
    std::fs::create_dir(wd.join("images")).unwrap();
    seed.podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        wd.join("images/b.tar").to_str().unwrap(),
        b,
    ]);
    // Plain `podman save` writes a docker-archive; accepted too.
    seed.podman(&["save", "-o", wd.join("c.tar").to_str().unwrap(), c]);
    let index = serde_json::json!({
        "version": 1,
        "images": [
            {"reference": a, "archive": "a.tar", "sha256": sha256_file(&wd.join("a.tar"))},
            {"reference": b, "archive": "./images/b.tar", "id": format!("sha256:{idb}")},
            {"reference": c, "archive": "c.tar"},
        ]
    });
    let bundle = build_bundle(
        wd,
        &index,
        &["a.tar", "images/b.tar", "c.tar"],
        "bundle.tar",
    );

    let store = Store::new();
    let opts = store.opts();
    let loaded = images::load_bundle(&bundle, &opts).await.unwrap();
    assert_eq!(
        loaded,
        vec![
            (a.to_string(), ImageOutcome::Loaded { id: ida.clone() }),
            (b.to_string(), ImageOutcome::Loaded { id: idb.clone() }),
            (c.to_string(), ImageOutcome::Loaded { id: idc.clone() }),
        ]
    );
    assert_eq!(store.id(a).await.as_deref(), Some(ida.as_str()));
    assert_eq!(store.id(c).await.as_deref(), Some(idc.as_str()));
    // Nothing is left behind in the unpack directory.
    let leftovers: Vec<_> = std::fs::read_dir(store.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("omlboot-bundle")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Now present, both for ensure (no registry exists for these names) and for a reload.
    let refs: Vec<String> = [a, b, c].iter().map(|s| s.to_string()).collect();
    let again = images::ensure(&refs, &opts).await;
    assert!(
        again
            .iter()
            .all(|(_, o)| matches!(o, ImageOutcome::Present { .. })),
        "{again:?}"
    );
    let reload = images::load_bundle(&bundle, &opts).await.unwrap();
    assert_eq!(
        reload.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
        vec![
            ImageOutcome::Present { id: ida },
            ImageOutcome::Present { id: idb },
            ImageOutcome::Present { id: idc },
        ]
    );
}

#[tokio::test]
async fn offline_bundle_problems() {
    let seed = Store::new();
    let work = tempfile::tempdir().unwrap();
    let wd = work.path();
    let a = "localhost/omlboot-test/corrupt-a:1";
    let b = "localhost/omlboot-test/corrupt-b:1";
    let idb = seed.make_image(b);
    seed.make_image(a);
    seed.podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        wd.join("a.tar").to_str().unwrap(),
        a,
    ]);
    seed.podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        wd.join("b.tar").to_str().unwrap(),
        b,
    ]);
    let index = serde_json::json!({
        "version": 1,
        "images": [
            {"reference": a, "archive": "a.tar", "sha256": "0".repeat(64)},
            {"reference": b, "archive": "b.tar"},
            {"reference": "localhost/omlboot-test/absent:1", "archive": "absent.tar"},
        ]
    });
    let bundle = build_bundle(wd, &index, &["a.tar", "b.tar"], "bundle.tar");
    let store = Store::new();
    let out = images::load_bundle(&bundle, &store.opts()).await.unwrap();
    assert!(
        matches!(&out[0].1, ImageOutcome::Failed { kind: FailKind::Other, message, .. } if message.contains("sha256")),
        "{out:?}"
    );
    assert_eq!(
        out[1].1,
        ImageOutcome::Loaded { id: idb },
        "a bad archive spoils only itself"
    );
    assert!(
        matches!(&out[2].1, ImageOutcome::Failed { message, .. } if message.contains("not in the bundle")),
        "{out:?}"
    );
    assert_eq!(store.id(a).await, None);

    // No index: an error naming the file it wants.
    let plain = wd.join("plain.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(wd)
        .args(["-cf", plain.to_str().unwrap(), "a.tar"])
        .status()
        .unwrap()
        .success());
    let err = images::load_bundle(&plain, &store.opts())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains(BUNDLE_INDEX), "{err:#}");
    let err = images::load_bundle(&wd.join("nope.tar"), &store.opts())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("nope.tar"), "{err:#}");
}

/// Every captured podman message in tests/fixtures/images/stderr is classified as its name says.
#[test]
fn classify_captured_podman_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/stderr");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let want = match name.split("--").next().unwrap() {
            "auth" => FailKind::Auth,
            "not_found" => FailKind::NotFound,
            "transient" => FailKind::Transient,
            "other" => FailKind::Other,
            k => panic!("{name}: unknown kind {k}"),
        };
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(images::classify(&text), want, "{name}");
        n += 1;
    }
    assert!(n >= 10, "only {n} fixtures");
}

#[test]
fn example_bundle_index_parses() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images/omlboot-images.example.json");
    let index: images::BundleIndex =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    assert_eq!(index.version, 1);
    assert_eq!(index.images.len(), 2);
}

// ---- issue 10, item 4: fault injection between podman and the registry -----------------------

/// What the fault front does to blob downloads (`GET …/blobs/sha256:…`); everything else passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Answer 503.
    Unavailable,
    /// Read the request and never answer.
    Stall,
    /// Forward the response's head and half its body, then reset the connection.
    ResetMidBlob,
}

/// A 127.0.0.1 front for the registry that injects `fault` into blob downloads, one request per
/// connection (so every blob request is seen, whatever connection reuse podman attempts).
struct FaultFront {
    port: u16,
    fault: Arc<std::sync::Mutex<Fault>>,
    /// Blob requests that got a fault.
    hits: Arc<AtomicUsize>,
}

impl FaultFront {
    async fn start(backend: u16, fault: Fault) -> FaultFront {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(std::sync::Mutex::new(fault));
        let hits = Arc::new(AtomicUsize::new(0));
        let (f, h) = (Arc::clone(&fault), Arc::clone(&hits));
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (fault, hits) = (Arc::clone(&f), Arc::clone(&h));
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    if conn.peek(&mut first).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if first[0] == 0x16 {
                        // podman's TLS probe: let the plain-http registry refuse it.
                        if let Ok(mut up) =
                            tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                        }
                        return;
                    }
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 2048];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let blob = head.starts_with(b"GET ")
                        && head.windows(14).any(|w| w == b"/blobs/sha256:");
                    let now = *fault.lock().unwrap();
                    if blob && now != Fault::None {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }
                    match (blob, now) {
                        (true, Fault::Unavailable) => {
                            let _ = conn
                                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                        (true, Fault::Stall) => {
                            tokio::time::sleep(Duration::from_secs(120)).await;
                            return;
                        }
                        _ => {}
                    }
                    // Forward this one request with Connection: close and relay the answer.
                    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    let mut req = head[..end].to_vec();
                    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
                    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                    else {
                        return;
                    };
                    if up.write_all(&req).await.is_err() {
                        return;
                    }
                    let mut resp = Vec::new();
                    if up.read_to_end(&mut resp).await.is_err() {
                        return;
                    }
                    if blob && now == Fault::ResetMidBlob {
                        let body_at = resp
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map_or(resp.len(), |p| p + 4);
                        let cut = body_at + (resp.len() - body_at) / 2;
                        let _ = conn.write_all(&resp[..cut]).await;
                        let _ = conn.flush().await;
                        let _ = conn.set_zero_linger(); // RST on drop
                        return;
                    }
                    let _ = conn.write_all(&resp).await;
                });
            }
        });
        FaultFront { port, fault, hits }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

/// The store holds no image and no layer: a failed pull left nothing half-written.
fn assert_store_empty(store: &Store) {
    let out = store.podman(&["images", "--all", "--quiet"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "images left in the store: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let layers = store.dir.path().join("root/vfs/dir");
    let n = std::fs::read_dir(&layers).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "layers left under {}", layers.display());
}

/// One fault, always on: bounded attempts, an error naming the image, nothing in the store; then
/// the fault is gone and the next run pulls the image.
async fn fault_then_recovery(fault: Fault, name: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path(), free_port(), false);
    let seeded = seed(&reg, &[name], None);
    let front = FaultFront::start(reg.port, fault).await;
    let reference = format!("127.0.0.1:{}/omlboot-test/{name}", front.port);
    let store = Store::new();
    let opts = ImageOptions {
        retries: 1,
        backoff: Duration::from_millis(100),
        attempt_timeout: Some(Duration::from_secs(20)),
        ..store.opts()
    };
    let start = Instant::now();
    let out = images::ensure(std::slice::from_ref(&reference), &opts).await;
    let took = start.elapsed();
    match &out[0].1 {
        ImageOutcome::Failed {
            kind,
            message,
            attempts,
        } => {
            assert_eq!(*kind, FailKind::Transient, "{message}");
            assert_eq!(*attempts, 2, "retries are bounded: {message}");
            assert!(
                message.contains(&reference),
                "the error names the image: {message}"
            );
            let lower = message.to_ascii_lowercase();
            assert!(
                expect.iter().any(|e| lower.contains(e)),
                "want one of {expect:?} in: {message}"
            );
        }
        other => panic!("{fault:?}: want Failed, got {other:?}"),
    }
    assert!(
        front.hits.load(Ordering::SeqCst) >= 2,
        "the fault was not hit"
    );
    // Two attempts of at most attempt_timeout each, plus backoff.
    assert!(took < Duration::from_secs(45), "{fault:?} took {took:?}");
    assert_store_empty(&store);

    front.set(Fault::None);
    let again = images::ensure(&[reference], &opts).await;
    assert_eq!(
        again[0].1,
        ImageOutcome::Pulled {
            id: seeded[0].1.clone(),
            attempts: 1
        },
        "the next run, with the fault gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_503_fails_bounded_naming_the_image_then_recovers() {
    fault_then_recovery(
        Fault::Unavailable,
        "blob503:1",
        &["503", "service unavailable"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_reset_midway_fails_bounded_naming_the_image_then_recovers() {
    fault_then_recovery(
        Fault::ResetMidBlob,
        "reset:1",
        &["connection reset", "unexpected eof", ": eof"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_blob_is_cut_by_the_attempt_deadline_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path(), free_port(), false);
    let seeded = seed(&reg, &["stall:1"], None);
    let front = FaultFront::start(reg.port, Fault::Stall).await;
    let reference = format!("127.0.0.1:{}/omlboot-test/stall:1", front.port);
    let store = Store::new();
    let opts = ImageOptions {
        retries: 1,
        backoff: Duration::from_millis(100),
        attempt_timeout: Some(Duration::from_secs(3)),
        ..store.opts()
    };
    let start = Instant::now();
    let out = images::ensure(std::slice::from_ref(&reference), &opts).await;
    let took = start.elapsed();
    match &out[0].1 {
        ImageOutcome::Failed {
            kind,
            message,
            attempts,
        } => {
            assert_eq!(*kind, FailKind::Transient);
            assert_eq!(*attempts, 2);
            assert!(message.contains(&reference), "{message}");
            assert!(message.contains("did not finish within"), "{message}");
        }
        other => panic!("want Failed, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(10),
        "two 3 s attempts took {took:?}"
    );
    assert_store_empty(&store);
    front.set(Fault::None);
    let again = images::ensure(&[reference], &opts).await;
    assert_eq!(again[0].1.id(), Some(seeded[0].1.as_str()));
}
