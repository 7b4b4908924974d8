//! The S3 client against a real S3 server on 127.0.0.1 (s3s + s3s-fs, in process) that checks
//! every SigV4 signature: buckets, objects, multipart, a refused secret, an interrupted upload.
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use omlboot::s3::{Change, Client, ClientConfig};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

const AK: &str = "omlboot-test-ak";
const SK: &str = "omlboot-test-secret-key-1234";
const BUCKET: &str = "omnileads";

struct Server {
    addr: SocketAddr,
    /// Part uploads seen, so a test knows the interruption happened where it meant.
    parts: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An s3s-fs server over `root`. With `drop_from_part = Some(n)`, the connection carrying part
/// n (and any later part) is dropped without an answer, as when the server dies mid-upload.
async fn start(root: &Path, drop_from_part: Option<u32>) -> Server {
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
    let s3 = b.build().into_shared();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let parts = Arc::new(AtomicU32::new(0));
    let seen = parts.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let s3 = s3.clone();
            let seen = seen.clone();
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let s3 = s3.clone();
                let part: Option<u32> = req
                    .uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("partNumber=")))
                    .and_then(|n| n.parse().ok());
                if part.is_some() {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
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
    Server { addr, parts, task }
}

fn client(addr: SocketAddr, secret: &str) -> Client {
    let mut cfg = ClientConfig::new(&format!("http://{addr}"), "us-east-1", AK, secret);
    cfg.multipart_threshold = 5 * 1024 * 1024;
    cfg.part_size = 5 * 1024 * 1024;
    Client::new(cfg).unwrap()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[tokio::test]
async fn bucket_create_is_idempotent_and_objects_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let srv = start(root.path(), None).await;
    let c = client(srv.addr, SK);

    assert!(!c.head_bucket(BUCKET).await.unwrap());
    assert_eq!(c.create_bucket(BUCKET).await.unwrap(), Change::Created);
    assert_eq!(
        c.create_bucket(BUCKET).await.unwrap(),
        Change::AlreadyPresent
    );
    assert!(c.head_bucket(BUCKET).await.unwrap());

    // A key with a slash, a space and a plus: S3's encoding rules, signed and sent alike.
    let key = "recordings/2026-12/call 1+2.wav";
    c.put_object(BUCKET, key, b"RIFF....WAVE".to_vec())
        .await
        .unwrap();
    c.put_object(BUCKET, "other/x.txt", b"x".to_vec())
        .await
        .unwrap();

    let meta = c
        .head_object(BUCKET, key)
        .await
        .unwrap()
        .expect("object exists");
    assert_eq!(meta.size, 12);
    assert_eq!(
        c.head_object(BUCKET, "recordings/none").await.unwrap(),
        None
    );

    let mut got = Vec::new();
    assert_eq!(c.get_object(BUCKET, key, &mut got).await.unwrap(), 12);
    assert_eq!(got, b"RIFF....WAVE");

    let listed = c.list_objects(BUCKET, "recordings/").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|o| (o.key.as_str(), o.size))
            .collect::<Vec<_>>(),
        vec![(key, 12)]
    );
    assert_eq!(c.list_objects(BUCKET, "").await.unwrap().len(), 2);

    c.delete_object(BUCKET, key).await.unwrap();
    assert_eq!(c.head_object(BUCKET, key).await.unwrap(), None);
    assert!(c
        .list_objects(BUCKET, "recordings/")
        .await
        .unwrap()
        .is_empty());

    let err = c
        .get_object(BUCKET, key, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchKey"), "{err}");
    let text = err.to_string();
    assert!(text.contains("get object") && text.contains(key), "{text}");
}

#[tokio::test]
async fn large_file_goes_up_in_parts_and_comes_back_identical() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let srv = start(root.path(), None).await;
    let c = client(srv.addr, SK);
    c.create_bucket(BUCKET).await.unwrap();

    let data: Vec<u8> = (0..12 * 1024 * 1024 + 3)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let src = work.path().join("backup.tar.zst");
    std::fs::write(&src, &data).unwrap();

    let n = c
        .put_object_from_file(BUCKET, "backups/full.tar.zst", &src)
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(srv.parts.load(Ordering::SeqCst), 3, "12 MiB in 5 MiB parts");

    let listed = c.list_objects(BUCKET, "backups/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, data.len() as u64);

    let dst = work.path().join("restored.tar.zst");
    c.get_object_to_file(BUCKET, "backups/full.tar.zst", &dst)
        .await
        .unwrap();
    assert_eq!(sha(&std::fs::read(&dst).unwrap()), sha(&data));
    assert!(!work.path().join(".restored.tar.zst.part").exists());

    // Under the threshold: one PUT, no parts.
    let small = work.path().join("small");
    std::fs::write(&small, b"small").unwrap();
    c.put_object_from_file(BUCKET, "backups/small", &small)
        .await
        .unwrap();
    assert_eq!(srv.parts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn wrong_secret_is_refused_with_a_clear_error_that_hides_the_secret() {
    let root = tempfile::tempdir().unwrap();
    let srv = start(root.path(), None).await;
    client(srv.addr, SK).create_bucket(BUCKET).await.unwrap();

    let wrong = "wrong-secret-value-987";
    let err = client(srv.addr, wrong)
        .put_object(BUCKET, "k", b"v".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err}");
    assert_eq!(err.status(), Some(403));
    assert!(err.is_bad_credentials());
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("put object omnileads/k"), "{shown}");
    assert!(!shown.contains(wrong) && !shown.contains(SK), "{shown}");
}

#[tokio::test]
async fn interrupted_multipart_upload_leaves_no_listed_object() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let srv = start(root.path(), Some(2)).await;
    let c = client(srv.addr, SK);
    c.create_bucket(BUCKET).await.unwrap();
    let src = work.path().join("big");
    std::fs::write(&src, vec![7u8; 11 * 1024 * 1024]).unwrap();

    let err = c
        .put_object_from_file(BUCKET, "backups/big", &src)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("upload part omnileads/backups/big"),
        "{err}"
    );
    assert_eq!(
        srv.parts.load(Ordering::SeqCst),
        2,
        "part 1 stored, part 2 dropped"
    );

    assert!(c.list_objects(BUCKET, "").await.unwrap().is_empty());
    assert_eq!(c.head_object(BUCKET, "backups/big").await.unwrap(), None);

    // The same server, restarted without the fault, still lists nothing under that key.
    drop(srv);
    let srv = start(root.path(), None).await;
    assert!(client(srv.addr, SK)
        .list_objects(BUCKET, "")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn unreachable_endpoint_fails_fast_and_names_the_operation() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = fast_retries(addr, 1).head_bucket(BUCKET).await.unwrap_err();
    assert!(
        err.to_string().starts_with("head bucket omnileads: "),
        "{err}"
    );
}

/// Answers `responses` in order, one per connection, and records each request's head.
async fn scripted(responses: Vec<String>) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for resp in responses {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap();
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
            sock.write_all(resp.as_bytes()).await.unwrap();
        }
    });
    (addr, seen)
}

fn http(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn target(head: &str) -> &str {
    head.split(' ').nth(1).unwrap()
}

/// `YYYYMMDDTHHMMSSZ` as an HTTP date.
fn http_date(t: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[t[4..6].parse::<usize>().unwrap() - 1];
    format!(
        "Xxx, {} {month} {} {}:{}:{} GMT",
        &t[6..8],
        &t[..4],
        &t[9..11],
        &t[11..13],
        &t[13..15]
    )
}

fn fast_retries(addr: SocketAddr, retries: u32) -> Client {
    let mut cfg = ClientConfig::new(&format!("http://{addr}"), "us-east-1", AK, SK);
    cfg.retries = retries;
    cfg.retry_backoff = std::time::Duration::from_millis(10);
    Client::new(cfg).unwrap()
}

/// s3s-fs answers every listing in one page, so pagination is checked against a server that
/// answers two pages.
#[tokio::test]
async fn listing_follows_continuation_tokens() {
    let page = |p: &str| {
        http(
            "200 OK",
            "",
            &format!("<?xml version=\"1.0\"?><ListBucketResult>{p}</ListBucketResult>"),
        )
    };
    let (addr, seen) = scripted(vec![
        page("<Contents><Key>b/1</Key><Size>1</Size><ETag>&quot;x&quot;</ETag></Contents>\
              <IsTruncated>true</IsTruncated><NextContinuationToken>tok/+=</NextContinuationToken>"),
        page("<Contents><Key>b/2 &amp; 3</Key><Size>2</Size></Contents><IsTruncated>false</IsTruncated>"),
    ])
    .await;
    let objs = client(addr, SK).list_objects(BUCKET, "b/").await.unwrap();
    let keys: Vec<(&str, u64)> = objs.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(keys, [("b/1", 1), ("b/2 & 3", 2)]);
    assert_eq!(objs[0].etag.as_deref(), Some("\"x\""));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        target(&seen[1]),
        "/omnileads?continuation-token=tok%2F%2B%3D&list-type=2&prefix=b%2F"
    );
}

#[tokio::test]
async fn a_starting_server_503_is_retried_and_then_given_up() {
    let busy = || {
        http(
            "503 Service Unavailable",
            "",
            "<Error><Code>XMinioServerNotInitialized</Code><Message>starting</Message></Error>",
        )
    };
    let (addr, seen) = scripted(vec![busy(), busy(), http("200 OK", "", "")]).await;
    assert!(fast_retries(addr, 4).head_bucket(BUCKET).await.unwrap());
    assert_eq!(seen.lock().unwrap().len(), 3);

    let (addr, _) = scripted(vec![busy(), busy()]).await;
    let err = fast_retries(addr, 1)
        .create_bucket(BUCKET)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("XMinioServerNotInitialized"), "{err}");
}

#[tokio::test]
async fn a_skewed_clock_is_corrected_from_the_server_date() {
    let ahead = omlboot::s3::sigv4::unix_now() + 3600;
    let t = omlboot::s3::sigv4::AmzDate::from_unix(ahead).timestamp;
    let date = format!("Date: {}\r\n", http_date(&t));
    let skewed = "<Error><Code>RequestTimeTooSkewed</Code><Message>too skewed</Message></Error>";
    let (addr, seen) = scripted(vec![
        http("403 Forbidden", &date, skewed),
        http("200 OK", "", ""),
        http("200 OK", "", ""),
    ])
    .await;
    let c = fast_retries(addr, 0);
    assert!(c.head_bucket(BUCKET).await.unwrap());
    assert!(
        c.head_bucket(BUCKET).await.unwrap(),
        "the offset is kept for later calls"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let sent = |head: &str| {
        let line = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("x-amz-date:"))
            .unwrap();
        let ts = line.split(':').nth(1).unwrap().trim().to_string();
        ts
    };
    let unix = |ts: &str| omlboot::s3::sigv4::parse_http_date(&http_date(ts)).unwrap();
    for head in &seen[1..] {
        let ts = sent(head);
        assert!(
            unix(&ts).abs_diff(ahead) < 120,
            "signed at {ts}, server time {t}"
        );
    }
    assert!(
        unix(&sent(&seen[0])).abs_diff(ahead) > 3000,
        "first attempt used the local clock"
    );
}
