//! The minio stand-in: a small but real S3 server (path-style, SigV4 header auth verified) plus the subset of
//! MinIO's admin API omlboot uses (add-user, policy attach / set-user-or-group-policy, user-info), with MinIO's
//! encrypted admin payloads. Root credential: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD. Users, their policies and
//! the objects live under the data directory (/data, the container's volume), so a restart keeps them.
//!
//! Permissions, as MinIO with its built-in policies: root may do anything; a user may use S3 only with a policy
//! (readwrite / consoleAdmin: everything; readonly: GET/HEAD; writeonly: PUT); unknown access key: 403
//! InvalidAccessKeyId; admin API: root only (403 AccessDenied otherwise).

use crate::http::{pct_decode, read_request, write_response, Request, Response};
use crate::madmin;
use crate::sigv4::{self, AuthError};
use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct User {
    pub secret: String,
    pub status: String,
    pub policies: Vec<String>,
}

pub struct Server {
    pub root_user: String,
    pub root_password: String,
    pub data: PathBuf,
    users: Mutex<BTreeMap<String, User>>,
}

fn json_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Minimal JSON reading for the admin payloads: the string value of "key", or the string array of "key".
pub fn json_str(j: &str, key: &str) -> Option<String> {
    let i = j.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = j[i..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let h: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
}

pub fn json_str_list(j: &str, key: &str) -> Vec<String> {
    let Some(i) = j.find(&format!("\"{key}\"")) else { return vec![] };
    let rest = &j[i + key.len() + 2..];
    let Some(rest) = rest.trim_start().strip_prefix(':') else { return vec![] };
    let rest = rest.trim_start();
    if rest.starts_with('"') {
        return json_str(j, key).map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    }
    let Some(rest) = rest.strip_prefix('[') else { return vec![] };
    let Some(end) = rest.find(']') else { return vec![] };
    rest[..end].split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect()
}

impl Server {
    pub fn new(root_user: String, root_password: String, data: PathBuf) -> Server {
        let s = Server { root_user, root_password, data, users: Mutex::new(BTreeMap::new()) };
        *s.users.lock().unwrap() = s.load_users();
        s
    }

    fn iam_path(&self) -> PathBuf {
        self.data.join(".minio.sys").join("e2e-standin-iam.tsv")
    }

    fn load_users(&self) -> BTreeMap<String, User> {
        let mut m = BTreeMap::new();
        if let Ok(t) = std::fs::read_to_string(self.iam_path()) {
            for l in t.lines() {
                let f: Vec<&str> = l.split('\t').collect();
                if f.len() >= 4 {
                    let policies = f[3].split(',').filter(|x| !x.is_empty()).map(String::from).collect();
                    m.insert(pct_decode(f[0]), User { secret: pct_decode(f[1]), status: f[2].into(), policies });
                }
            }
        }
        m
    }

    fn save_users(&self, m: &BTreeMap<String, User>) -> std::io::Result<()> {
        let p = self.iam_path();
        std::fs::create_dir_all(p.parent().unwrap())?;
        let mut t = String::from("");
        for (k, u) in m {
            t += &format!("{}\t{}\t{}\t{}\n", crate::http::aws_encode(k, false), crate::http::aws_encode(&u.secret, false), u.status, u.policies.join(","));
        }
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, t)?;
        std::fs::rename(tmp, p)
    }

    pub fn users_summary(&self) -> String {
        let m = self.users.lock().unwrap();
        m.iter().map(|(k, u)| format!("{k}({})", u.policies.join("+"))).collect::<Vec<_>>().join(" ")
    }

    pub fn serve(self: Arc<Self>, l: TcpListener) {
        for conn in l.incoming() {
            let Ok(s) = conn else { continue };
            let me = self.clone();
            std::thread::spawn(move || me.connection(s));
        }
    }

    fn connection(&self, s: TcpStream) {
        let Ok(s2) = s.try_clone() else { return };
        let mut r = BufReader::new(s);
        let mut w = BufWriter::new(s2);
        while let Ok(Some(req)) = read_request(&mut r, &mut w) {
            let mut resp = self.handle(&req);
            resp.head = req.method == "HEAD";
            let close = req.header("connection").map(|c| c.eq_ignore_ascii_case("close")).unwrap_or(false);
            if write_response(&mut w, &resp).is_err() || close {
                break;
            }
        }
    }

    fn s3_error(&self, status: u16, code: &str, msg: &str, req: &Request) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>E2ESTANDIN</RequestId><HostId>e2e-standin</HostId></Error>",
            xml_escape(msg),
            xml_escape(&pct_decode(&req.raw_path))
        );
        println!("e2e-standin[minio]: {} {} -> {status} {code}", req.method, req.raw_path);
        Response::new(status, "application/xml", body.into_bytes())
    }

    fn admin_error(&self, status: u16, code: &str, msg: &str, req: &Request) -> Response {
        println!("e2e-standin[minio]: admin {} {} -> {status} {code}", req.method, req.raw_path);
        let body = format!("{{\"Code\":\"{code}\",\"Message\":\"{}\",\"Resource\":\"{}\",\"RequestId\":\"E2ESTANDIN\",\"HostId\":\"e2e-standin\"}}", json_escape(msg), json_escape(&req.raw_path));
        Response::new(status, "application/json", body.into_bytes())
    }

    /// Who signed the request: Ok(access key) or an error response.
    fn authenticate(&self, req: &Request) -> Result<Option<String>, (u16, &'static str, String)> {
        let auth = match sigv4::parse_auth(req) {
            Ok(a) => a,
            Err(AuthError::Anonymous) => return Ok(None),
            Err(AuthError::Bad(code, msg)) => return Err((400, code, msg)),
        };
        let secret = if auth.access_key == self.root_user {
            self.root_password.clone()
        } else {
            match self.users.lock().unwrap().get(&auth.access_key) {
                Some(u) if u.status == "enabled" => u.secret.clone(),
                Some(_) => return Err((403, "InvalidAccessKeyId", "Your account is disabled; please contact your administrator.".into())),
                None => return Err((403, "InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.".into())),
            }
        };
        sigv4::verify(req, &auth, &secret).map_err(|(c, m)| (if c == "XAmzContentSHA256Mismatch" || c == "AuthorizationHeaderMalformed" { 400 } else { 403 }, c, m))?;
        Ok(Some(auth.access_key))
    }

    pub fn handle(&self, req: &Request) -> Response {
        let path = pct_decode(&req.raw_path);
        if path == "/minio/health/live" || path == "/minio/health/ready" || path == "/minio/health/cluster" {
            return Response::new(200, "text/plain", vec![]);
        }
        let who = match self.authenticate(req) {
            Ok(w) => w,
            Err((st, code, msg)) => {
                return if path.starts_with("/minio/admin/") { self.admin_error(st, code, &msg, req) } else { self.s3_error(st, code, &msg, req) }
            }
        };
        if let Some(cmd) = path.strip_prefix("/minio/admin/v3/") {
            if who.as_deref() != Some(self.root_user.as_str()) {
                return self.admin_error(403, "AccessDenied", "Access Denied.", req);
            }
            return self.admin(cmd, req);
        }
        self.s3(&path, who, req)
    }

    fn admin(&self, cmd: &str, req: &Request) -> Response {
        let decrypt = |req: &Request| madmin::decrypt(&self.root_password, &req.body);
        match (req.method.as_str(), cmd) {
            ("PUT", "add-user") => {
                let Some(ak) = req.param("accessKey").filter(|a| !a.is_empty()) else {
                    return self.admin_error(400, "XMinioAdminInvalidArgument", "accessKey is required", req);
                };
                let plain = match decrypt(req) {
                    Ok(p) => String::from_utf8_lossy(&p).into_owned(),
                    Err(e) => return self.admin_error(400, "XMinioAdminConfigBadJSON", &format!("cannot decrypt the request body: {e}"), req),
                };
                let Some(secret) = json_str(&plain, "secretKey") else {
                    return self.admin_error(400, "XMinioAdminConfigBadJSON", "no secretKey in the request body", req);
                };
                if ak == self.root_user {
                    return self.admin_error(400, "XMinioAdminInvalidArgument", "cannot create a user with the root access key", req);
                }
                if secret.len() < 8 {
                    return self.admin_error(400, "XMinioAdminInvalidArgument", "secret key length should be between 8 and 40", req);
                }
                let status = json_str(&plain, "status").unwrap_or_else(|| "enabled".into());
                let mut m = self.users.lock().unwrap();
                let policies = m.get(&ak).map(|u| u.policies.clone()).unwrap_or_default();
                m.insert(ak.clone(), User { secret, status, policies });
                if let Err(e) = self.save_users(&m) {
                    return self.admin_error(500, "InternalError", &e.to_string(), req);
                }
                println!("e2e-standin[minio]: admin add-user {ak}");
                Response::new(200, "application/json", vec![])
            }
            ("POST", "idp/builtin/policy/attach") | ("POST", "idp/builtin/policy/detach") => {
                let plain = match decrypt(req) {
                    Ok(p) => String::from_utf8_lossy(&p).into_owned(),
                    Err(e) => return self.admin_error(400, "XMinioAdminConfigBadJSON", &format!("cannot decrypt the request body: {e}"), req),
                };
                let policies = json_str_list(&plain, "policies");
                let Some(user) = json_str(&plain, "user").filter(|u| !u.is_empty()) else {
                    return self.admin_error(400, "XMinioAdminInvalidArgument", "only user policy attachment is supported by the stand-in", req);
                };
                if let Some(p) = policies.iter().find(|p| !known_policy(p)) {
                    return self.admin_error(404, "XMinioAdminNoSuchPolicy", &format!("The canned policy {p} does not exist."), req);
                }
                let attach = cmd.ends_with("attach");
                let mut m = self.users.lock().unwrap();
                let Some(u) = m.get_mut(&user) else {
                    return self.admin_error(404, "XMinioAdminNoSuchUser", &format!("The specified user {user} does not exist."), req);
                };
                let before = u.policies.clone();
                for p in &policies {
                    if attach && !u.policies.contains(p) {
                        u.policies.push(p.clone());
                    }
                    if !attach {
                        u.policies.retain(|x| x != p);
                    }
                }
                if u.policies == before {
                    // Like MinIO: attaching what is already attached is an error.
                    return self.admin_error(400, "XMinioAdminPolicyChangeAlreadyApplied", "The specified policy change is already in effect.", req);
                }
                if let Err(e) = self.save_users(&m) {
                    return self.admin_error(500, "InternalError", &e.to_string(), req);
                }
                println!("e2e-standin[minio]: admin policy {} {policies:?} user={user}", if attach { "attach" } else { "detach" });
                let key = if attach { "policiesAttached" } else { "policiesDetached" };
                let list = policies.iter().map(|p| format!("\"{}\"", json_escape(p))).collect::<Vec<_>>().join(",");
                let body = format!("{{\"updatedAt\":\"{}\",\"{key}\":[{list}],\"user\":\"{}\"}}", sigv4::iso_date(sigv4::now_unix()), json_escape(&user));
                Response::new(200, "application/octet-stream", madmin::encrypt(&self.root_password, body.as_bytes()))
            }
            ("PUT", "set-user-or-group-policy") => {
                let (Some(name), Some(user)) = (req.param("policyName"), req.param("userOrGroup")) else {
                    return self.admin_error(400, "XMinioAdminInvalidArgument", "policyName and userOrGroup are required", req);
                };
                if req.param("isGroup").as_deref() == Some("true") {
                    return self.admin_error(400, "XMinioAdminInvalidArgument", "groups are not supported by the stand-in", req);
                }
                let policies: Vec<String> = name.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                if let Some(p) = policies.iter().find(|p| !known_policy(p)) {
                    return self.admin_error(404, "XMinioAdminNoSuchPolicy", &format!("The canned policy {p} does not exist."), req);
                }
                let mut m = self.users.lock().unwrap();
                let Some(u) = m.get_mut(&user) else {
                    return self.admin_error(404, "XMinioAdminNoSuchUser", &format!("The specified user {user} does not exist."), req);
                };
                u.policies = policies.clone();
                if let Err(e) = self.save_users(&m) {
                    return self.admin_error(500, "InternalError", &e.to_string(), req);
                }
                println!("e2e-standin[minio]: admin set-user-or-group-policy {policies:?} user={user}");
                Response::new(200, "application/json", vec![])
            }
            ("GET", "user-info") => {
                let ak = req.param("accessKey").unwrap_or_default();
                let m = self.users.lock().unwrap();
                let Some(u) = m.get(&ak) else {
                    return self.admin_error(404, "XMinioAdminNoSuchUser", &format!("The specified user {ak} does not exist."), req);
                };
                let body = format!(
                    "{{\"policyName\":\"{}\",\"status\":\"{}\",\"updatedAt\":\"{}\"}}",
                    json_escape(&u.policies.join(",")),
                    u.status,
                    sigv4::iso_date(sigv4::now_unix())
                );
                Response::new(200, "application/json", body.into_bytes())
            }
            ("GET", "list-users") => {
                let m = self.users.lock().unwrap();
                let body = format!(
                    "{{{}}}",
                    m.iter().map(|(k, u)| format!("\"{}\":{{\"policyName\":\"{}\",\"status\":\"{}\"}}", json_escape(k), json_escape(&u.policies.join(",")), u.status)).collect::<Vec<_>>().join(",")
                );
                Response::new(200, "application/octet-stream", madmin::encrypt(&self.root_password, body.as_bytes()))
            }
            _ => self.admin_error(501, "NotImplemented", &format!("admin API {} {cmd} is not implemented by the e2e stand-in", req.method), req),
        }
    }

    fn allowed(&self, who: &Option<String>, write: bool) -> Result<(), (&'static str, &'static str)> {
        let Some(ak) = who else { return Err(("AccessDenied", "Access Denied.")) };
        if *ak == self.root_user {
            return Ok(());
        }
        let m = self.users.lock().unwrap();
        let ps = m.get(ak).map(|u| u.policies.clone()).unwrap_or_default();
        let ok = ps.iter().any(|p| match p.as_str() {
            "readwrite" | "consoleAdmin" => true,
            "readonly" => !write,
            "writeonly" => write,
            _ => false,
        });
        if ok { Ok(()) } else { Err(("AccessDenied", "Access Denied.")) }
    }

    fn bucket_dir(&self, b: &str) -> PathBuf {
        self.data.join(b)
    }

    fn s3(&self, path: &str, who: Option<String>, req: &Request) -> Response {
        let p = path.trim_start_matches('/');
        let (bucket, key) = match p.split_once('/') {
            Some((b, k)) => (b.to_string(), k.to_string()),
            None => (p.to_string(), String::new()),
        };
        let write = matches!(req.method.as_str(), "PUT" | "POST" | "DELETE");
        if let Err((code, msg)) = self.allowed(&who, write) {
            return self.s3_error(403, code, msg, req);
        }
        if bucket.is_empty() {
            if req.method != "GET" {
                return self.s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.", req);
            }
            let mut names: Vec<String> = std::fs::read_dir(&self.data)
                .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with('.')).collect())
                .unwrap_or_default();
            names.sort();
            let now = sigv4::iso_date(sigv4::now_unix());
            let bs: String = names.iter().map(|n| format!("<Bucket><Name>{}</Name><CreationDate>{now}</CreationDate></Bucket>", xml_escape(n))).collect();
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>02d6176db174dc93cb1b899f7c6078f08654445fe8cf1b6ce98d8855f66bdbf4</ID><DisplayName>minio</DisplayName></Owner><Buckets>{bs}</Buckets></ListAllMyBucketsResult>");
            return Response::new(200, "application/xml", body.into_bytes());
        }
        if bucket.starts_with('.') || bucket.len() < 3 || !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
            return self.s3_error(400, "InvalidBucketName", "The specified bucket is not valid.", req);
        }
        let bdir = self.bucket_dir(&bucket);
        if key.is_empty() {
            return self.bucket_op(&bucket, &bdir, req);
        }
        if key.split('/').any(|c| c == ".." || c == ".") || key.ends_with('/') {
            return self.s3_error(400, "XMinioInvalidObjectName", "Object name contains unsupported characters.", req);
        }
        if !bdir.is_dir() {
            return self.s3_error(404, "NoSuchBucket", "The specified bucket does not exist", req);
        }
        let f = bdir.join(&key);
        match req.method.as_str() {
            "PUT" => {
                if req.header("x-amz-copy-source").is_some() || req.has_param("uploads") || req.has_param("partNumber") {
                    return self.s3_error(501, "NotImplemented", "copy and multipart uploads are not implemented by the e2e stand-in", req);
                }
                let body = decode_aws_chunked(req);
                let r = std::fs::create_dir_all(f.parent().unwrap()).and_then(|_| {
                    let tmp = f.with_file_name(format!(".{}.tmp", f.file_name().unwrap().to_string_lossy()));
                    std::fs::write(&tmp, &body)?;
                    std::fs::rename(tmp, &f)
                });
                if let Err(e) = r {
                    return self.s3_error(500, "InternalError", &e.to_string(), req);
                }
                println!("e2e-standin[minio]: put s3://{bucket}/{key} ({} bytes) by {}", body.len(), who.unwrap_or_default());
                Response::new(200, "text/plain", vec![]).with("ETag", &etag(&body))
            }
            "GET" | "HEAD" => match std::fs::read(&f) {
                Ok(b) if f.is_file() => {
                    let mtime = std::fs::metadata(&f).ok().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64).unwrap_or(0);
                    let e = etag(&b);
                    Response::new(200, "application/octet-stream", b).with("ETag", &e).with("Last-Modified", &sigv4::http_date(mtime)).with("Accept-Ranges", "bytes")
                }
                _ => self.s3_error(404, "NoSuchKey", "The specified key does not exist.", req),
            },
            "DELETE" => {
                let _ = std::fs::remove_file(&f);
                Response::new(204, "text/plain", vec![])
            }
            _ => self.s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.", req),
        }
    }

    fn bucket_op(&self, bucket: &str, bdir: &Path, req: &Request) -> Response {
        let exists = bdir.is_dir();
        match req.method.as_str() {
            "PUT" if req.raw_query.is_empty() => {
                if exists {
                    return self.s3_error(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.", req);
                }
                if let Err(e) = std::fs::create_dir_all(bdir) {
                    return self.s3_error(500, "InternalError", &e.to_string(), req);
                }
                println!("e2e-standin[minio]: bucket {bucket} created");
                Response::new(200, "text/plain", vec![]).with("Location", &format!("/{bucket}"))
            }
            _ if !exists => self.s3_error(404, "NoSuchBucket", "The specified bucket does not exist", req),
            "HEAD" => Response::new(200, "text/plain", vec![]),
            "GET" if req.has_param("location") => Response::new(
                200,
                "application/xml",
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></LocationConstraint>".to_vec(),
            ),
            "GET" if req.raw_query.is_empty() || req.has_param("list-type") || req.has_param("prefix") || req.has_param("delimiter") => {
                let prefix = req.param("prefix").unwrap_or_default();
                let mut keys = vec![];
                walk(bdir, bdir, &mut keys);
                keys.sort();
                let items: String = keys
                    .iter()
                    .filter(|(k, _, _)| k.starts_with(&prefix))
                    .map(|(k, size, mtime)| format!("<Contents><Key>{}</Key><LastModified>{}</LastModified><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>", xml_escape(k), sigv4::iso_date(*mtime)))
                    .collect();
                let n = keys.iter().filter(|(k, _, _)| k.starts_with(&prefix)).count();
                let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{n}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{items}</ListBucketResult>", xml_escape(bucket), xml_escape(&prefix));
                Response::new(200, "application/xml", body.into_bytes())
            }
            "DELETE" if req.raw_query.is_empty() => match std::fs::remove_dir(bdir) {
                Ok(()) => Response::new(204, "text/plain", vec![]),
                Err(_) => self.s3_error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty", req),
            },
            _ => self.s3_error(501, "NotImplemented", &format!("bucket sub-resource {:?} is not implemented by the e2e stand-in", req.raw_query), req),
        }
    }
}

fn known_policy(p: &str) -> bool {
    matches!(p, "readwrite" | "readonly" | "writeonly" | "consoleAdmin" | "diagnostics")
}

fn etag(b: &[u8]) -> String {
    format!("\"{}\"", &sigv4::sha256_hex(b)[..32])
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64, i64)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            continue;
        }
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(m) = e.metadata() {
            let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64).unwrap_or(0);
            out.push((p.strip_prefix(root).unwrap().to_string_lossy().into_owned(), m.len(), mtime));
        }
    }
}

/// aws-chunked bodies (x-amz-content-sha256: STREAMING-...): strip the chunk framing (chunk signatures are not
/// verified by the stand-in).
fn decode_aws_chunked(req: &Request) -> Vec<u8> {
    let streaming = req.header("x-amz-content-sha256").map(|v| v.starts_with("STREAMING-")).unwrap_or(false)
        || req.header("content-encoding").map(|v| v.contains("aws-chunked")).unwrap_or(false);
    if !streaming {
        return req.body.clone();
    }
    let b = &req.body;
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let Some(eol) = b[i..].windows(2).position(|w| w == b"\r\n") else { break };
        let line = String::from_utf8_lossy(&b[i..i + eol]).into_owned();
        let n = usize::from_str_radix(line.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        i += eol + 2;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i..(i + n).min(b.len())]);
        i += n + 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bits() {
        let j = r#"{"secretKey":"a\"b","status":"enabled","policies":["readwrite", "x"],"user":"AK"}"#;
        assert_eq!(json_str(j, "secretKey").unwrap(), "a\"b");
        assert_eq!(json_str_list(j, "policies"), vec!["readwrite", "x"]);
        assert_eq!(json_str(j, "user").unwrap(), "AK");
    }
}
