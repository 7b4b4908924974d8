//! The MinIO wire format checked against MinIO's own published client code, the official
//! Python SDK (`minio` on PyPI): no MinIO server can run here, so what the real server accepts
//! is pinned by what MinIO's client sends.
//!
//! (a) madmin's encrypted bodies: Python decrypts what Rust encrypted, Rust what Python did;
//! (b) SigV4: the SDK's signer and ours give the same Authorization for the same request;
//! (c) admin calls: MinioAdmin.user_add / attach_policy / policy_set / user_info and our Admin
//!     send the same method, path, query and (decrypted) body to a recording server, and every
//!     recorded request verifies under our signer.
//!
//! The SDK is installed with pip when missing; the test fails (never skips) when it cannot be.
use omlboot::s3::sigv4::{self, AmzDate, Signer};
use omlboot::s3::{crypto, Admin, Change, ClientConfig};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SDK_PIN: &str = "minio==7.2.20";
const ROOT_AK: &str = "minioadmin";
const ROOT_SK: &str = "root-Secret/Key+42";
const APP_AK: &str = "omnileads";
const APP_SK: &str = "app-secret-key-123";

fn ensure_sdk() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let has = || {
            Command::new("python3")
                .args(["-c", "import minio"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has() {
            let st = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", SDK_PIN])
                .status()
                .expect("python3 must be installed for this test");
            assert!(
                st.success() && has(),
                "could not install the MinIO Python SDK ({SDK_PIN}) with pip"
            );
        }
    });
}

/// Runs `script` with `args`, `stdin` on its standard input; returns its trimmed stdout.
fn python(script: &str, args: &[&str], stdin: &str) -> String {
    ensure_sdk();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all_sync(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

trait WriteAllSync {
    fn write_all_sync(self, data: &[u8]);
}
impl WriteAllSync for std::process::ChildStdin {
    fn write_all_sync(mut self, data: &[u8]) {
        use std::io::Write;
        self.write_all(data).unwrap();
    }
}

const PY_CRYPTO: &str = r#"
import io, sys
from minio.crypto import encrypt, decrypt
class Resp:
    def __init__(self, b): self.b = io.BytesIO(b)
    def read(self, n=-1): return self.b.read(n)
    def close(self): pass
    def release_conn(self): pass
mode, password = sys.argv[1], sys.argv[2]
for line in sys.stdin.read().split():
    data = bytes.fromhex(line)
    out = encrypt(data, password) if mode == "encrypt" else decrypt(Resp(data), password)
    print(out.hex())
"#;

fn payloads() -> Vec<Vec<u8>> {
    vec![
        br#"{"secretKey":"app-secret-key-123","status":"enabled"}"#.to_vec(),
        br#"{"policies":["readwrite"],"user":"omnileads"}"#.to_vec(),
        (0..16 * 1024).map(|i| (i % 251) as u8).collect(),
        (0..40_000).map(|i| (i % 241) as u8).collect(),
    ]
}

#[test]
fn encrypted_bodies_cross_decrypt_between_rust_and_the_sdk() {
    let ps = payloads();
    // Rust → Python, with both AEADs a server may meet.
    let mut lines = Vec::new();
    for p in &ps {
        lines.push(hex::encode(crypto::encrypt(ROOT_SK, p).unwrap()));
        let chacha = crypto::encrypt_with(
            ROOT_SK,
            p,
            crypto::Aead2::ChaCha20Poly1305,
            &[3; 32],
            &[4; 8],
        )
        .unwrap();
        lines.push(hex::encode(chacha));
    }
    let got = python(PY_CRYPTO, &["decrypt", ROOT_SK], &lines.join("\n"));
    let want: Vec<String> = ps
        .iter()
        .flat_map(|p| [hex::encode(p), hex::encode(p)])
        .collect();
    assert_eq!(got.lines().collect::<Vec<_>>(), want);

    // Python → Rust.
    let lines: Vec<String> = ps.iter().map(hex::encode).collect();
    let enc = python(PY_CRYPTO, &["encrypt", ROOT_SK], &lines.join("\n"));
    for (line, p) in enc.lines().zip(&ps) {
        let data = hex::decode(line).unwrap();
        assert_eq!(crypto::decrypt(ROOT_SK, &data).unwrap(), *p);
        assert!(crypto::decrypt("not-the-root-key", &data).is_err());
    }
}

const PY_SIGN: &str = r#"
import json, sys
from datetime import datetime, timezone
from urllib.parse import SplitResult
from minio.credentials import Credentials
from minio.helpers import quote, queryencode
from minio.signer import sign_v4_s3
for line in sys.stdin.read().splitlines():
    r = json.loads(line)
    query = "&".join(f"{queryencode(k)}={queryencode(v)}" for k, v in sorted(r["query"]))
    url = SplitResult("http", r["headers"]["host"], quote(r["path"]), query, "")
    date = datetime.strptime(r["date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    h = sign_v4_s3(method=r["method"], url=url, region=r["region"], headers=dict(r["headers"]),
                   credentials=Credentials(r["ak"], r["sk"]), content_sha256=r["payload"], date=date)
    print(h["Authorization"])
"#;

/// method, decoded path, decoded query, region, body
type SignCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, &'a [u8]);

#[test]
fn sigv4_matches_the_sdk_signer() {
    let cases: Vec<SignCase> = vec![
        ("GET", "/", vec![], "us-east-1", b""),
        ("PUT", "/omnileads", vec![], "us-east-1", b""),
        (
            "PUT",
            "/omnileads/recordings/2026/call 1+2 ñ~x.wav",
            vec![],
            "sa-east-1",
            b"RIFF",
        ),
        (
            "GET",
            "/omnileads",
            vec![("list-type", "2"), ("prefix", "backups/2026 a+b")],
            "us-east-1",
            b"",
        ),
        (
            "GET",
            "/omnileads",
            vec![("list-type", "2"), ("continuation-token", "1/abc==")],
            "eu-west-1",
            b"",
        ),
        (
            "PUT",
            "/omnileads/k",
            vec![("partNumber", "10"), ("uploadId", "a/b+c=")],
            "us-east-1",
            b"part",
        ),
        (
            "PUT",
            "/minio/admin/v3/add-user",
            vec![("accessKey", APP_AK)],
            "us-east-1",
            b"\x00enc",
        ),
        (
            "GET",
            "/minio/admin/v3/user-info",
            vec![("accessKey", "a user@x")],
            "us-east-1",
            b"",
        ),
    ];
    let when = AmzDate::parse("20261206T231500Z").unwrap();
    let mut lines = Vec::new();
    let mut want = Vec::new();
    for (i, (method, path, query, region, body)) in cases.iter().enumerate() {
        // Every other case unsigned, as a streaming upload would be.
        let payload = if i % 2 == 1 {
            sigv4::UNSIGNED_PAYLOAD.to_string()
        } else {
            sigv4::sha256_hex(body)
        };
        let headers = vec![
            ("host".to_string(), "127.0.0.1:9000".to_string()),
            ("x-amz-content-sha256".to_string(), payload.clone()),
            ("x-amz-date".to_string(), when.timestamp.clone()),
        ];
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signer = Signer {
            access_key: ROOT_AK,
            secret_key: ROOT_SK,
            region,
            service: "s3",
        };
        let req = sigv4::Request {
            method,
            path,
            query: &query,
            headers: &headers,
            payload_hash: &payload,
        };
        want.push(sigv4::authorization(&signer, &when, &req));
        lines.push(
            serde_json::json!({
                "method": method, "path": path, "query": query, "region": region,
                "headers": headers.iter().cloned().collect::<BTreeMap<_, _>>(),
                "ak": ROOT_AK, "sk": ROOT_SK, "payload": payload, "date": when.timestamp,
            })
            .to_string(),
        );
    }
    let got = python(PY_SIGN, &[], &lines.join("\n"));
    // The SDK writes no space after the commas of the Authorization value; AWS accepts both.
    let got: Vec<String> = got.lines().map(|l| l.replace(", ", ",")).collect();
    assert_eq!(got, want);
}

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// How the recording server answers `idp/builtin/policy/attach`.
const ATTACH_OK: u8 = 0;
const ATTACH_UNKNOWN: u8 = 1;
const ATTACH_ALREADY: u8 = 2;

/// A minimal HTTP/1.1 server: one request per connection, recorded, answered like MinIO would
/// for these calls.
async fn recording_server(mode: Arc<AtomicU8>) -> (u16, Arc<Mutex<Vec<Recorded>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let rec = log.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let rec = rec.clone();
            let mode = mode.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap().split(' ');
                let method = first.next().unwrap().to_string();
                let target = first.next().unwrap().to_string();
                let headers: BTreeMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let (path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
                let query = raw_query
                    .split('&')
                    .filter(|s| !s.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (pct_decode(k), pct_decode(v))
                    })
                    .collect();
                let (status, body) = match path {
                    "/minio/admin/v3/idp/builtin/policy/attach" => {
                        match mode.load(Ordering::SeqCst) {
                            ATTACH_UNKNOWN => (
                                "404 Not Found",
                                r#"{"Code":"XMinioUnknownAPIRequest","Message":"Unknown API request"}"#,
                            ),
                            ATTACH_ALREADY => (
                                "400 Bad Request",
                                r#"{"Code":"XMinioAdminPolicyChangeAlreadyApplied","Message":"The specified policy change is already in effect."}"#,
                            ),
                            _ => ("204 No Content", ""),
                        }
                    }
                    "/minio/admin/v3/user-info" => {
                        ("200 OK", r#"{"policyName":"readwrite","status":"enabled"}"#)
                    }
                    _ => ("200 OK", ""),
                };
                rec.lock().unwrap().push(Recorded {
                    method,
                    path: pct_decode(path),
                    query,
                    headers,
                    body: buf[head_end..head_end + len.min(buf.len() - head_end)].to_vec(),
                });
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, log)
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Recomputes the Authorization of a recorded request with our signer and the root secret.
fn verify_signature(r: &Recorded) {
    let auth = r.headers.get("authorization").expect("signed request");
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let region = auth
        .split("Credential=")
        .nth(1)
        .unwrap()
        .split('/')
        .nth(2)
        .unwrap();
    let headers: Vec<(String, String)> = signed
        .split(';')
        .map(|h| (h.to_string(), r.headers[h].clone()))
        .collect();
    let payload = &r.headers["x-amz-content-sha256"];
    assert_eq!(
        *payload,
        sigv4::sha256_hex(&r.body),
        "{} {}: payload hash",
        r.method,
        r.path
    );
    let when = AmzDate::parse(&r.headers["x-amz-date"]).unwrap();
    let signer = Signer {
        access_key: ROOT_AK,
        secret_key: ROOT_SK,
        region,
        service: "s3",
    };
    let req = sigv4::Request {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &headers,
        payload_hash: payload,
    };
    assert_eq!(
        auth.replace(", ", ","),
        sigv4::authorization(&signer, &when, &req),
        "{} {}",
        r.method,
        r.path
    );
}

/// What must match between the SDK's request and ours.
fn shape(r: &Recorded) -> (String, String, Vec<(String, String)>, serde_json::Value) {
    let mut query = r.query.clone();
    query.sort();
    let body = if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        let plain =
            crypto::decrypt(ROOT_SK, &r.body).expect("body encrypted with the root secret key");
        serde_json::from_slice(&plain).unwrap()
    };
    (r.method.clone(), r.path.clone(), query, body)
}

const PY_ADMIN: &str = r#"
import sys
from minio import MinioAdmin
from minio.credentials import StaticProvider
port, ak, sk, app_ak, app_sk, step = sys.argv[1:7]
a = MinioAdmin(endpoint=f"127.0.0.1:{port}", credentials=StaticProvider(ak, sk), secure=False, region="us-east-1")
if step == "user_add": a.user_add(app_ak, app_sk)
if step == "attach_policy": a.attach_policy(["readwrite"], user=app_ak)
if step == "policy_set": a.policy_set("readwrite", user=app_ak)
if step == "user_info": print(a.user_info(app_ak))
"#;

async fn sdk(port: u16, step: &str) {
    let port = port.to_string();
    let step = step.to_string();
    tokio::task::spawn_blocking(move || {
        python(
            PY_ADMIN,
            &[&port, ROOT_AK, ROOT_SK, APP_AK, APP_SK, &step],
            "",
        )
    })
    .await
    .unwrap();
}

fn take(log: &Mutex<Vec<Recorded>>) -> Vec<Recorded> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_match_the_sdk() {
    let mode = Arc::new(AtomicU8::new(ATTACH_OK));
    let (port, log) = recording_server(mode.clone()).await;
    let admin = Admin::new(ClientConfig::new(
        &format!("http://127.0.0.1:{port}"),
        "us-east-1",
        ROOT_AK,
        ROOT_SK,
    ))
    .unwrap();

    let mut pairs = Vec::new();
    let mut one = |sdk_side: Vec<Recorded>, rust_side: Vec<Recorded>, what: &str| {
        assert_eq!(sdk_side.len(), 1, "{what}: SDK requests {sdk_side:?}");
        assert_eq!(rust_side.len(), 1, "{what}: our requests {rust_side:?}");
        pairs.push((what.to_string(), sdk_side[0].clone(), rust_side[0].clone()));
    };

    sdk(port, "user_add").await;
    let s = take(&log);
    admin.add_user(APP_AK, APP_SK).await.unwrap();
    one(s, take(&log), "add user");

    sdk(port, "attach_policy").await;
    let s = take(&log);
    assert_eq!(
        admin.attach_policy(APP_AK, "readwrite").await.unwrap(),
        Change::Created
    );
    one(s, take(&log), "attach policy");

    sdk(port, "user_info").await;
    let s = take(&log);
    let info = admin.user_info(APP_AK).await.unwrap().expect("user exists");
    assert!(info.has_policy("readwrite") && info.status == "enabled");
    one(s, take(&log), "user info");

    // An older server without policy/attach: our fallback sends what the SDK's policy_set sends.
    sdk(port, "policy_set").await;
    let s = take(&log);
    mode.store(ATTACH_UNKNOWN, Ordering::SeqCst);
    assert_eq!(
        admin.attach_policy(APP_AK, "readwrite").await.unwrap(),
        Change::Created
    );
    let mut ours = take(&log);
    assert_eq!(ours.len(), 2, "attach, then the fallback: {ours:?}");
    assert_eq!(ours[0].path, "/minio/admin/v3/idp/builtin/policy/attach");
    let fallback = ours.split_off(1);
    one(s, fallback, "set-user-or-group-policy");

    mode.store(ATTACH_ALREADY, Ordering::SeqCst);
    assert_eq!(
        admin.attach_policy(APP_AK, "readwrite").await.unwrap(),
        Change::AlreadyPresent
    );
    take(&log);

    for (what, sdk_req, ours) in &pairs {
        verify_signature(sdk_req);
        verify_signature(ours);
        assert_eq!(shape(sdk_req), shape(ours), "{what}");
    }
    let add = shape(&pairs[0].2);
    assert_eq!(
        add.3,
        serde_json::json!({"secretKey": APP_SK, "status": "enabled"})
    );
    assert_eq!(add.2, vec![("accessKey".to_string(), APP_AK.to_string())]);
    assert_eq!(
        shape(&pairs[1].2).3,
        serde_json::json!({"policies": ["readwrite"], "user": APP_AK})
    );
    // The secret travels only encrypted.
    for (_, s, o) in &pairs {
        for r in [s, o] {
            assert!(!String::from_utf8_lossy(&r.body).contains(APP_SK));
            assert!(!r
                .query
                .iter()
                .any(|(_, v)| v.contains(APP_SK) || v.contains(ROOT_SK)));
        }
    }
}
