//! `s3::bootstrap` against a MinIO stand-in on 127.0.0.1: s3s + s3s-fs for S3 (SigV4 checked,
//! one secret per user), plus the admin calls MinIO answers, with bodies that must decrypt under
//! the root secret key, users that can be disabled, and the readwrite policy enforced on S3 calls.
//! The wire format itself is pinned against MinIO's SDK in s3_minio_sdk.rs.
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use omlboot::s3::{bootstrap, crypto, Change, Client, ClientConfig};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, Body, S3Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

const ROOT_AK: &str = "minioadmin";
const ROOT_SK: &str = "root-secret-key-42";
const BUCKET: &str = "omnileads";
const APP_AK: &str = "omlapp";
const APP_SK: &str = "app-secret-key-123";

#[derive(Debug, Clone)]
struct User {
    secret: String,
    enabled: bool,
    policies: Vec<String>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, User>,
    /// Admin calls that change something, as "METHOD command".
    writes: Vec<String>,
    /// Emulates a MinIO older than `idp/builtin/policy/attach`.
    old_server: bool,
}

type Shared = Arc<Mutex<State>>;

struct Auth(Shared);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == ROOT_AK {
            return Ok(ROOT_SK.into());
        }
        match self.0.lock().unwrap().users.get(access_key) {
            Some(u) if u.enabled => Ok(u.secret.as_str().into()),
            _ => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

fn json(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(body))
        .unwrap()
}

fn admin_error(status: u16, code: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({"Code": code, "Message": format!("stand-in: {code}")}).to_string(),
    )
}

fn access_key(req: &Request<hyper::body::Incoming>) -> String {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
        .to_string()
}

fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), urlencoding_decode(v)))
        .collect()
}

fn urlencoding_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
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

/// MinIO's admin handlers for the calls bootstrap makes. S3 checked the signature already for
/// S3 paths; for admin paths the stand-in requires the root access key and a body that decrypts
/// with the root secret (a wrong root secret fails there, as on MinIO).
async fn admin(state: &Shared, req: Request<hyper::body::Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    if access_key(&req) != ROOT_AK {
        return admin_error(403, "InvalidAccessKeyId");
    }
    let command = req
        .uri()
        .path()
        .trim_start_matches("/minio/admin/v3/")
        .to_string();
    let method = req.method().to_string();
    let q = query(&req);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let plain = || -> Option<serde_json::Value> {
        let p = crypto::decrypt(ROOT_SK, &body).ok()?;
        serde_json::from_slice(&p).ok()
    };
    let mut st = state.lock().unwrap();
    match (method.as_str(), command.as_str()) {
        ("GET", "user-info") => match st.users.get(&q["accessKey"]) {
            None => admin_error(404, "XMinioAdminNoSuchUser"),
            Some(u) => json(
                200,
                serde_json::json!({"policyName": u.policies.join(","),
                                   "status": if u.enabled {"enabled"} else {"disabled"}})
                .to_string(),
            ),
        },
        ("PUT", "add-user") => {
            let Some(v) = plain() else {
                return admin_error(400, "XMinioAdminConfigBadJSON");
            };
            let ak = q["accessKey"].clone();
            let user = st.users.entry(ak).or_insert(User {
                secret: String::new(),
                enabled: true,
                policies: vec![],
            });
            user.secret = v["secretKey"].as_str().unwrap().to_string();
            user.enabled = v["status"] == "enabled";
            st.writes.push("PUT add-user".into());
            json(200, String::new())
        }
        ("POST", "idp/builtin/policy/attach") if !st.old_server => {
            let Some(v) = plain() else {
                return admin_error(400, "XMinioAdminConfigBadJSON");
            };
            let policies: Vec<String> = v["policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            let Some(user) = st.users.get_mut(v["user"].as_str().unwrap()) else {
                return admin_error(404, "XMinioAdminNoSuchUser");
            };
            if policies.iter().all(|p| user.policies.contains(p)) {
                return admin_error(400, "XMinioAdminPolicyChangeAlreadyApplied");
            }
            user.policies.extend(policies);
            st.writes.push("POST idp/builtin/policy/attach".into());
            // Newer MinIO answers an encrypted association summary; clients may ignore it.
            let summary =
                crypto::encrypt(ROOT_SK, b"{\"policiesAttached\":[\"readwrite\"]}").unwrap();
            Response::builder()
                .status(200)
                .body(Body::from(summary))
                .unwrap()
        }
        ("PUT", "set-user-or-group-policy") => {
            let Some(user) = st.users.get_mut(&q["userOrGroup"]) else {
                return admin_error(404, "XMinioAdminNoSuchUser");
            };
            user.policies = vec![q["policyName"].clone()];
            st.writes.push("PUT set-user-or-group-policy".into());
            json(200, String::new())
        }
        _ => admin_error(400, "XMinioUnknownAPIRequest"),
    }
}

async fn start(state: Shared) -> (SocketAddr, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
    b.set_auth(Auth(state.clone()));
    let s3 = b.build().into_shared();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let s3 = s3.clone();
            let state = state.clone();
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let s3 = s3.clone();
                let state = state.clone();
                async move {
                    if req.uri().path().starts_with("/minio/admin/v3/") {
                        return Ok::<_, s3s::S3Error>(admin(&state, req).await);
                    }
                    // MinIO's IAM: an application user needs a policy for any S3 call.
                    let ak = access_key(&req);
                    if ak != ROOT_AK {
                        let allowed = state
                            .lock()
                            .unwrap()
                            .users
                            .get(&ak)
                            .is_some_and(|u| u.policies.iter().any(|p| p == "readwrite"));
                        if !allowed {
                            return Err(s3_error!(AccessDenied));
                        }
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
    (addr, root)
}

fn root_cfg(addr: SocketAddr, root_secret: &str) -> ClientConfig {
    ClientConfig::new(&format!("http://{addr}"), "us-east-1", ROOT_AK, root_secret)
}

fn app(addr: SocketAddr, secret: &str) -> Client {
    Client::new(ClientConfig::new(
        &format!("http://{addr}"),
        "us-east-1",
        APP_AK,
        secret,
    ))
    .unwrap()
}

fn writes(state: &Shared) -> Vec<String> {
    std::mem::take(&mut state.lock().unwrap().writes)
}

#[tokio::test]
async fn first_run_creates_everything_and_a_second_run_changes_nothing() {
    let state = Shared::default();
    let (addr, _root) = start(state.clone()).await;

    let out = bootstrap(root_cfg(addr, ROOT_SK), BUCKET, APP_AK, APP_SK)
        .await
        .unwrap();
    assert_eq!(
        (out.bucket, out.user, out.policy),
        (Change::Created, Change::Created, Change::Created)
    );
    assert!(out.changed());
    assert_eq!(
        out.to_string(),
        "bucket created, user created, policy readwrite created"
    );
    assert_eq!(
        writes(&state),
        ["PUT add-user", "POST idp/builtin/policy/attach"]
    );

    // What uwsgi does with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    let app = app(addr, APP_SK);
    app.put_object(BUCKET, "recordings/probe", b"ok".to_vec())
        .await
        .unwrap();
    let mut got = Vec::new();
    app.get_object(BUCKET, "recordings/probe", &mut got)
        .await
        .unwrap();
    assert_eq!(got, b"ok");

    let again = bootstrap(root_cfg(addr, ROOT_SK), BUCKET, APP_AK, APP_SK)
        .await
        .unwrap();
    let present = Change::AlreadyPresent;
    assert_eq!(
        (again.bucket, again.user, again.policy),
        (present, present, present)
    );
    assert!(!again.changed());
    assert!(writes(&state).is_empty(), "a converged server is only read");
}

#[tokio::test]
async fn changed_secret_and_disabled_user_are_brought_back_in_line() {
    let state = Shared::default();
    let (addr, _root) = start(state.clone()).await;
    bootstrap(root_cfg(addr, ROOT_SK), BUCKET, APP_AK, APP_SK)
        .await
        .unwrap();
    writes(&state);

    let new_secret = "rotated-app-secret-456";
    let out = bootstrap(root_cfg(addr, ROOT_SK), BUCKET, APP_AK, new_secret)
        .await
        .unwrap();
    assert_eq!(
        (out.user, out.policy),
        (Change::Updated, Change::AlreadyPresent)
    );
    assert_eq!(writes(&state), ["PUT add-user"]);
    assert!(app(addr, new_secret).head_bucket(BUCKET).await.unwrap());
    assert!(app(addr, APP_SK)
        .check_access(BUCKET)
        .await
        .unwrap_err()
        .is_bad_credentials());

    state.lock().unwrap().users.get_mut(APP_AK).unwrap().enabled = false;
    let out = bootstrap(root_cfg(addr, ROOT_SK), BUCKET, APP_AK, new_secret)
        .await
        .unwrap();
    assert_eq!(out.user, Change::Updated);
    assert!(state.lock().unwrap().users[APP_AK].enabled);
}

#[tokio::test]
async fn older_minio_gets_the_policy_through_set_user_or_group_policy() {
    let state = Shared::default();
    state.lock().unwrap().old_server = true;
    let (addr, _root) = start(state.clone()).await;
    let out = bootstrap(root_cfg(addr, ROOT_SK), BUCKET, APP_AK, APP_SK)
        .await
        .unwrap();
    assert_eq!(out.policy, Change::Created);
    assert_eq!(
        writes(&state),
        ["PUT add-user", "PUT set-user-or-group-policy"]
    );
    app(addr, APP_SK)
        .put_object(BUCKET, "k", b"v".to_vec())
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_root_secret_fails_clearly_without_showing_secrets() {
    let state = Shared::default();
    let (addr, _root) = start(state.clone()).await;
    let wrong = "not-the-root-secret";
    let err = bootstrap(root_cfg(addr, wrong), BUCKET, APP_AK, APP_SK)
        .await
        .unwrap_err();
    let shown = format!("{err} | {err:?}");
    assert!(
        shown.contains("create bucket omnileads") && shown.contains("SignatureDoesNotMatch"),
        "{shown}"
    );
    for secret in [wrong, ROOT_SK, APP_SK] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(state.lock().unwrap().users.is_empty());
}
