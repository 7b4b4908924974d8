//! Backups on S3: the real S3 client through the `ObjectStore` adapter against an S3 server on
//! 127.0.0.1 (s3s + s3s-fs, checking every SigV4 signature) and a real PostgreSQL 15: backup,
//! verification, restore on a "new host" (another cluster), an omldeploytool dump in the bucket,
//! wrong credentials, an unreachable endpoint and an upload cut in the middle (nothing listed).
mod backup_support;
use backup_support::*;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use omlboot::backup::dest::s3::S3;
use omlboot::backup::dest::Destination;
use omlboot::backup::restore::{self, Refused, Request};
use omlboot::backup::{self as bk};
use omlboot::s3::{Client, ClientConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const AK: &str = "omlboot-backup-ak";
const SK: &str = "omlboot-backup-secret-key-1234";
const BUCKET: &str = "backups";
const NOW: u64 = 1_709_622_489; // 2024-03-05 07:08:09 UTC

/// An s3s-fs server over `root` on its own runtime; with `drop_from_part`, part n and later are
/// answered with an error (the server dies mid-upload).
struct Server {
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
}

fn server(root: &Path, drop_from_part: Option<u32>) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    std::fs::create_dir_all(root).unwrap();
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
    let s3 = b.build().into_shared();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let s3 = s3.clone();
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let s3 = s3.clone();
                let part: Option<u32> = req
                    .uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("partNumber=")))
                    .and_then(|n| n.parse().ok());
                let drop_it = matches!((part, drop_from_part), (Some(p), Some(d)) if p >= d);
                async move {
                    if drop_it {
                        return Err(s3s::s3_error!(InternalError, "test: connection dropped"));
                    }
                    hyper::service::Service::call(&s3, req).await
                }
            });
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), svc)
                    .await;
            });
        }
    });
    let client = {
        let _g = rt.enter();
        Client::new(cfg(addr, SK)).unwrap()
    };
    rt.block_on(client.create_bucket(BUCKET)).unwrap();
    Server { addr, rt }
}

fn cfg(addr: SocketAddr, secret: &str) -> ClientConfig {
    let mut c = ClientConfig::new(&format!("http://{addr}"), "us-east-1", AK, secret);
    c.multipart_threshold = 5 * 1024 * 1024;
    c.part_size = 5 * 1024 * 1024;
    c.retries = 0;
    c
}

/// Every key in the bucket, read with the right credentials.
fn keys(s: &Server) -> Vec<String> {
    let client = {
        let _g = s.rt.enter();
        Client::new(cfg(s.addr, SK)).unwrap()
    };
    s.rt.block_on(client.list_objects(BUCKET, ""))
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

fn req<'a>(source: &'a str, work: &Path, root: &Path) -> Request<'a> {
    Request {
        source,
        discard_previous: false,
        writers: writers(),
        work: work.to_path_buf(),
        root: root.to_path_buf(),
        now: NOW + 3600,
    }
}

#[test]
fn backup_verify_and_restore_on_a_new_host_through_s3() {
    let t = tempfile::tempdir().unwrap();
    let srv = server(&t.path().join("s3"), None);
    let dest = S3::connect(cfg(srv.addr, SK), BUCKET, "oml").unwrap();
    assert!(dest
        .describe()
        .starts_with("s3://backups/oml at http://127.0.0.1:"));
    // Host A with data.
    let a = cluster();
    fill(&a.pg, 5000);
    let vols_a = volumes(&t.path().join("vols-a"));
    let started = Instant::now();
    let done = bk::run(&a.pg, &vols_a, &dest, &spec(t.path().join("work-a")), NOW).unwrap();
    let backup_ms = started.elapsed().as_millis();
    assert!(done.verified.as_ref().unwrap().ok, "{:?}", done.verified);
    assert_eq!(done.rows, 5007);
    let mut k = keys(&srv);
    k.sort();
    assert_eq!(
        k,
        vec![
            "oml/acme/dow_2/acme-20240305T070809Z.manifest.json",
            "oml/acme/dow_2/acme-20240305T070809Z.tar.zst",
        ]
        .into_iter()
        .map(|s| s.replace(".tar.zst", bk::manifest::ARCHIVE_SUFFIX))
        .collect::<Vec<_>>()
    );
    let listed = bk::list(&dest).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].manifest.is_verified());

    // Host B: a fresh cluster (empty omnileads database) restores A's backup by name.
    let b = cluster();
    let vols_b = omlboot::backup::seams::DirVolumes {
        root: t.path().join("vols-b"),
    };
    std::fs::create_dir_all(t.path().join("vols-b")).unwrap();
    let services = FakeServices::default();
    let started = Instant::now();
    let r = restore::restore(
        &b.pg,
        &vols_b,
        &services,
        Some(&dest),
        &req(&listed[0].manifest.name, &t.path().join("work-b"), t.path()),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let restore_ms = started.elapsed().as_millis();
    assert!(r.checksummed);
    assert_eq!(rows(&b.pg, "reportes_app_llamadalog"), 5000);
    assert_eq!(
        std::fs::read_to_string(
            t.path()
                .join("vols-b/asterisk_conf/custom/oml_extensions_custom.conf")
        )
        .unwrap(),
        "[from-custom]\nexten => 1,1,NoOp\n"
    );
    eprintln!(
        "figures: 5000-row database, archive {} bytes, backup+verify+upload {backup_ms} ms, download+check+restore {restore_ms} ms",
        done.size
    );
}

#[test]
fn an_omldeploytool_dump_in_the_bucket_is_a_restore_source() {
    let t = tempfile::tempdir().unwrap();
    let srv = server(&t.path().join("s3"), None);
    let a = cluster();
    fill(&a.pg, 30);
    let dump = t.path().join("pgsql-backup-1681319391.sql");
    let st = Command::new(format!("{BIN}/pg_dump"))
        .args(["-h", "127.0.0.1", "-p", &a.pg.port.to_string()])
        .args(["-U", "postgres", "-Fc", "-b", "-d", "omnileads", "-f"])
        .arg(&dump)
        .status()
        .unwrap();
    assert!(st.success());
    // Where omldeploytool puts it: s3://<bucket>/backup/pgsql-backup-<epoch>.sql.
    let client = {
        let _g = srv.rt.enter();
        Client::new(cfg(srv.addr, SK)).unwrap()
    };
    srv.rt
        .block_on(client.put_object_from_file(BUCKET, "backup/pgsql-backup-1681319391.sql", &dump))
        .unwrap();
    // backup_bucket_url without backup_destination: s3://<bucket>/backup.
    let dest = S3::connect(cfg(srv.addr, SK), BUCKET, "backup").unwrap();
    let b = cluster();
    let services = FakeServices::default();
    let vols = volumes(&t.path().join("vols"));
    let r = restore::restore(
        &b.pg,
        &vols,
        &services,
        Some(&dest),
        &req("1681319391", &t.path().join("work"), t.path()),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!r.checksummed);
    assert_eq!(rows(&b.pg, "reportes_app_llamadalog"), 30);
}

#[test]
fn wrong_credentials_and_an_unreachable_endpoint_fail_clearly_and_list_nothing() {
    let t = tempfile::tempdir().unwrap();
    let srv = server(&t.path().join("s3"), None);
    let c = cluster();
    fill(&c.pg, 10);
    let vols = volumes(&t.path().join("vols"));
    let mut sp = spec(t.path().join("work"));
    sp.verify = false;

    let wrong = S3::connect(cfg(srv.addr, "not-the-secret-key"), BUCKET, "oml").unwrap();
    let e = format!("{:#}", bk::run(&c.pg, &vols, &wrong, &sp, NOW).unwrap_err());
    assert!(e.contains("s3://backups/oml at http://127.0.0.1:"), "{e}");
    assert!(e.contains("credentials were refused"), "{e}");
    assert!(!e.contains("not-the-secret-key"), "{e}");
    assert!(keys(&srv).is_empty());
    assert_eq!(std::fs::read_dir(t.path().join("work")).unwrap().count(), 0);

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = S3::connect(cfg(port, SK), BUCKET, "oml").unwrap();
    let e = format!("{:#}", bk::run(&c.pg, &vols, &gone, &sp, NOW).unwrap_err());
    assert!(
        e.contains(&format!("s3://backups/oml at http://{port}")),
        "{e}"
    );
    assert!(e.contains("cannot be reached"), "{e}");
    let e = format!("{:#}", bk::list(&gone).unwrap_err());
    assert!(e.contains("cannot be reached"), "{e}");
    // Restore from it: refused or failed, nothing stopped.
    let services = FakeServices::default();
    let r = restore::restore(
        &c.pg,
        &vols,
        &services,
        Some(&gone),
        &req("acme-20240305T070809Z", &t.path().join("work"), t.path()),
    );
    assert!(matches!(r, Err(Refused::Failed(_))), "{r:?}");
    assert!(services.log.lock().unwrap().is_empty());
    assert_eq!(rows(&c.pg, "reportes_app_llamadalog"), 10);
}

#[test]
fn an_upload_cut_in_the_middle_leaves_no_listed_backup() {
    let t = tempfile::tempdir().unwrap();
    // Parts 2 and later fail: the multipart upload of the archive breaks after its first part.
    let srv = server(&t.path().join("s3"), Some(2));
    let c = cluster();
    fill(&c.pg, 10);
    let vols = volumes(&t.path().join("vols"));
    // 12 MiB of incompressible data in a volume: the archive goes up in parts.
    let mut noise = vec![0u8; 12 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(t.path().join("vols/asterisk_conf/custom/big.wav"), noise).unwrap();
    let mut sp = spec(t.path().join("work"));
    sp.verify = false;
    let dest = S3::connect(cfg(srv.addr, SK), BUCKET, "oml").unwrap();
    let e = format!("{:#}", bk::run(&c.pg, &vols, &dest, &sp, NOW).unwrap_err());
    assert!(e.contains("uploading the archive"), "{e}");
    assert!(keys(&srv).is_empty(), "{:?}", keys(&srv));
    assert!(bk::list(&dest).unwrap().is_empty());
}

fn settings(sets: &[&str]) -> Result<omlboot::config::schema::Settings, String> {
    let mut all = vec!["omni_ip_lan=10.0.0.5".to_string()];
    all.extend(sets.iter().map(|s| s.to_string()));
    let cfg = omlboot::config::Config::load(&omlboot::config::Sources {
        file: None,
        env: vec![],
        sets: all,
        role: Some("aio".into()),
    })
    .map_err(|e| format!("{e:#}"))?;
    let errs = omlboot::backup::config::check(&cfg);
    if !errs.is_empty() {
        return Err(format!("{errs:?}"));
    }
    Ok(cfg.settings())
}

#[test]
fn s3_keys_pick_the_endpoint_bucket_and_credentials() {
    use omlboot::backup::config::Backup;
    use omlboot::backup::dest::Target;
    // The host's own MinIO with the recordings' keys.
    let b = Backup::from_settings(
        &settings(&[
            "backup_destination=s3://omnileads/backups",
            "bucket_secret_key=minio-app-secret",
        ])
        .unwrap(),
    );
    assert_eq!(
        b.target,
        Some(Target::S3 {
            bucket: "omnileads".into(),
            prefix: "backups".into()
        })
    );
    let a = b.s3.clone().unwrap();
    assert_eq!(
        (a.endpoint.as_str(), a.access_key.as_str()),
        ("http://127.0.0.1:9000", "omlminio")
    );
    // The generated secret comes from the store when the config has none.
    let b2 =
        Backup::from_settings(&settings(&["backup_destination=s3://omnileads/backups"]).unwrap());
    assert!(b2.s3.as_ref().unwrap().secret_key.is_none());
    let e = b2.destination(&|_| None).err().unwrap();
    assert!(
        format!("{e:#}").contains("no secret key for s3://omnileads"),
        "{e:#}"
    );
    assert!(b2
        .destination(&|_| Some("from-store".into()))
        .unwrap()
        .is_some());
    // omldeploytool: backup_bucket_url (aws) + name + keys, no backup_destination.
    let b = Backup::from_settings(
        &settings(&[
            "backup_bucket_url=aws",
            "backup_bucket_name=tenants-backup",
            "backup_bucket_key_id=AKIAEXAMPLE",
            "backup_bucket_secret_key=very-secret-key",
            "bucket_region=sa-east-1",
            "cron_backup_hh=2",
        ])
        .unwrap(),
    );
    assert_eq!(
        b.target,
        Some(Target::S3 {
            bucket: "tenants-backup".into(),
            prefix: "backup".into()
        })
    );
    let a = b.s3.unwrap();
    assert_eq!(a.endpoint, "https://s3.sa-east-1.amazonaws.com");
    assert_eq!(a.access_key, "AKIAEXAMPLE");
    // Refused, naming the key.
    for (sets, key) in [
        (
            &["backup_bucket_url=https://s3.example.com"][..],
            "backup_bucket_key_id",
        ),
        (
            &[
                "backup_bucket_url=ftp://s3.example.com",
                "backup_bucket_key_id=k",
                "backup_bucket_secret_key=s12345678",
            ][..],
            "backup_bucket_url",
        ),
        (
            &[
                "backup_destination=/srv/b",
                "backup_bucket_url=https://s3.example.com",
                "backup_bucket_key_id=k",
                "backup_bucket_secret_key=s12345678",
            ][..],
            "backup_bucket_url",
        ),
        (
            &["backup_destination=s3://a/x", "backup_bucket_name=b"][..],
            "backup_bucket_name",
        ),
        (
            &["backup_destination=s3://a/x", "backup_bucket_key_id=k"][..],
            "backup_bucket_secret_key",
        ),
    ] {
        let e = settings(sets).unwrap_err();
        assert!(e.contains(key), "{sets:?}: {e}");
    }
}
