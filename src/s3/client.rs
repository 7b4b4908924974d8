//! A small async S3 client: path-style addressing, SigV4 with the payload hash signed, one
//! configurable endpoint (the host's MinIO, an external bucket_url, or AWS).
use super::error::{parse_error_body, S3Error};
use super::sigv4::{self, AmzDate, Signer};
use crate::config::Secret;
use crate::retry::Retry;
use reqwest::{Method, Response, StatusCode, Url};
use serde::Deserialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Where and as whom to talk S3. Every field has a default but the endpoint and the keys, so
/// tests point it at 127.0.0.1 and production at MinIO or AWS.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://127.0.0.1:9000`, `https://minio.example:9000`, [`ClientConfig::aws_endpoint`].
    pub endpoint: String,
    /// Part of the signature; MinIO's default is `us-east-1`.
    pub region: String,
    pub access_key: String,
    pub secret_key: Secret,
    /// For `bucket_ssl_selfsigned`: MinIO behind a self-signed certificate.
    pub accept_invalid_certs: bool,
    pub connect_timeout: Duration,
    /// Bound of one request with a small body, or of one multipart part.
    pub timeout: Duration,
    /// Bound of a whole GET of an object (archives can be large).
    pub download_timeout: Duration,
    /// Files up to this size go in one PUT; larger ones in parts.
    pub multipart_threshold: u64,
    /// At least 5 MiB (S3's minimum for every part but the last); grown for huge files so
    /// no upload needs more than 10 000 parts.
    pub part_size: u64,
    /// Extra attempts after a refused connection or a 503.
    pub retries: u32,
    /// Delay before the first retry; doubled for each next one.
    pub retry_backoff: Duration,
}

impl ClientConfig {
    /// Uncapped: retries are few (by default four, waiting 0.5 + 1 + 2 + 4 s), so the doubling
    /// never grows far.
    pub fn retry(&self) -> Retry {
        Retry::new(self.retries, self.retry_backoff)
    }
}

impl ClientConfig {
    pub fn new(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: if region.is_empty() {
                "us-east-1".into()
            } else {
                region.into()
            },
            access_key: access_key.into(),
            secret_key: Secret::new(secret_key),
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            download_timeout: Duration::from_secs(6 * 3600),
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 16 * 1024 * 1024,
            retries: 4,
            retry_backoff: Duration::from_millis(500),
        }
    }

    /// omldeploytool's `bucket_url: aws`.
    pub fn aws_endpoint(region: &str) -> String {
        format!("https://s3.{region}.amazonaws.com")
    }

    /// The endpoint for a `bucket_url` setting: `aws` means AWS in `region`, anything else is
    /// the URL of an S3-compatible server.
    pub fn endpoint_for_bucket_url(bucket_url: &str, region: &str) -> String {
        match bucket_url.trim() {
            "aws" => ClientConfig::aws_endpoint(region),
            url => url.trim_end_matches('/').to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    /// Existed, but was brought in line (a user's secret key or status).
    Updated,
    AlreadyPresent,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::AlreadyPresent => "already present",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectInfo {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "LastModified", default)]
    pub last_modified: Option<String>,
    #[serde(rename = "ETag", default)]
    pub etag: Option<String>,
}

/// One request: what is signed and sent, and what an error names.
pub(crate) struct Call {
    pub op: &'static str,
    pub target: String,
    pub method: Method,
    /// Decoded absolute path (`/bucket/key`, `/minio/admin/v3/add-user`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
}

impl Call {
    pub fn new(op: &'static str, target: impl Into<String>, method: Method, path: String) -> Call {
        Call {
            op,
            target: target.into(),
            method,
            path,
            query: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    pub fn query(mut self, k: &str, v: &str) -> Call {
        self.query.push((k.into(), v.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Call {
        self.body = body;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    cfg: ClientConfig,
    http: reqwest::Client,
    base: Url,
    /// Server clock minus ours, in seconds, once a refusal showed they differ.
    clock_offset: Arc<AtomicI64>,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, S3Error> {
        let base = Url::parse(&cfg.endpoint)
            .map_err(|e| S3Error::Invalid(format!("endpoint {:?}: {e}", cfg.endpoint)))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.host_str().is_none()
            || base.query().is_some()
        {
            return Err(S3Error::Invalid(format!(
                "endpoint {:?}: expected http(s)://host[:port]",
                cfg.endpoint
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .danger_accept_invalid_certs(cfg.accept_invalid_certs)
            // Path-style S3 never redirects a correct request; following one would re-send a
            // signature made for another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| S3Error::Invalid(format!("HTTP client: {e}")))?;
        Ok(Client {
            cfg,
            http,
            base,
            clock_offset: Arc::new(AtomicI64::new(0)),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    fn host_header(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    /// Signs and sends; any status comes back (callers decide what 404 means). Retries only
    /// what the server cannot have acted on: a refused connection and 503 (MinIO says so while
    /// it starts), with doubling delays.
    pub(crate) async fn send(&self, call: &Call) -> Result<Response, S3Error> {
        let clock_fixed = AtomicBool::new(false);
        // Err(Ok(503 answer)) and Err(Err(error)) are the failures to judge; a 503 that is still
        // there when the retries run out is returned as the answer it is.
        let outcome = self
            .cfg
            .retry()
            .run(
                |_| async {
                    match self.send_signed(call, &clock_fixed).await {
                        Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                            Err(Ok(resp))
                        }
                        Ok(resp) => Ok(resp),
                        Err(e) => Err(Err(e)),
                    }
                },
                |failed, next| match failed {
                    Err(S3Error::Transport { source, .. }) if source.is_connect() => {
                        let delay = next.wait;
                        tracing::debug!(
                            "{} {}: {source}; retrying in {delay:?}",
                            call.op,
                            call.target
                        );
                        true
                    }
                    Ok(_) => {
                        let delay = next.wait;
                        tracing::debug!("{} {}: 503; retrying in {delay:?}", call.op, call.target);
                        true
                    }
                    Err(_) => false,
                },
            )
            .await;
        outcome.result.or_else(|failed| failed)
    }

    /// One request. A 403 from a server whose clock is more than 5 minutes from ours is signed
    /// again, once per [`Client::send`], with the server's time: a VM at first boot may not have
    /// synced its clock yet, and S3 refuses requests more than 15 minutes off.
    async fn send_signed(
        &self,
        call: &Call,
        clock_fixed: &AtomicBool,
    ) -> Result<Response, S3Error> {
        let resp = self.send_once(call, &self.now()).await?;
        if resp.status() != StatusCode::FORBIDDEN || clock_fixed.load(Ordering::Relaxed) {
            return Ok(resp);
        }
        let server = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(sigv4::parse_http_date);
        let Some(server) = server else {
            return Ok(resp);
        };
        let offset = server as i64 - sigv4::unix_now() as i64;
        if offset.abs() <= 300 {
            return Ok(resp);
        }
        tracing::warn!(
            "{}: the server's clock is {offset} s from ours; signing with its time",
            self.cfg.endpoint
        );
        self.clock_offset.store(offset, Ordering::Relaxed);
        clock_fixed.store(true, Ordering::Relaxed);
        self.send_once(call, &self.now()).await
    }

    /// Our clock corrected by what a skewed server told us.
    fn now(&self) -> AmzDate {
        let now = sigv4::unix_now() as i64 + self.clock_offset.load(Ordering::Relaxed);
        AmzDate::from_unix(now.max(0) as u64)
    }

    async fn send_once(&self, call: &Call, when: &AmzDate) -> Result<Response, S3Error> {
        let prefix = self.base.path().trim_end_matches('/');
        let path = format!("{prefix}{}", call.path);
        let payload_hash = sigv4::sha256_hex(&call.body);
        let headers = vec![
            ("host".to_string(), self.host_header()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
            ("x-amz-date".to_string(), when.timestamp.clone()),
        ];
        let req = sigv4::Request {
            method: call.method.as_str(),
            path: &path,
            query: &call.query,
            headers: &headers,
            payload_hash: &payload_hash,
        };
        let signer = Signer {
            access_key: &self.cfg.access_key,
            secret_key: self.cfg.secret_key.expose(),
            region: &self.cfg.region,
            service: "s3",
        };
        let auth = sigv4::authorization(&signer, when, &req);
        let mut url = format!(
            "{}://{}{}",
            self.base.scheme(),
            self.host_header(),
            sigv4::uri_encode(&path, false)
        );
        let query = sigv4::canonical_query(&call.query);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let mut rb = self
            .http
            .request(call.method.clone(), url)
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", &when.timestamp)
            .header("authorization", auth);
        if let Some(t) = call.timeout {
            rb = rb.timeout(t);
        }
        if !call.body.is_empty() || call.method == Method::PUT || call.method == Method::POST {
            rb = rb.body(call.body.clone());
        }
        rb.send().await.map_err(|source| S3Error::Transport {
            op: call.op,
            target: call.target.clone(),
            source,
        })
    }

    /// [`Client::send`], with any non-2xx answer turned into [`S3Error::Service`].
    pub(crate) async fn send_ok(&self, call: &Call) -> Result<Response, S3Error> {
        let resp = self.send(call).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.service_error(call, resp).await)
        }
    }

    pub(crate) async fn service_error(&self, call: &Call, resp: Response) -> S3Error {
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        let (code, message) = parse_error_body(status, &body);
        S3Error::Service {
            op: call.op,
            target: call.target.clone(),
            status,
            code,
            message,
        }
    }

    pub(crate) async fn body(&self, call: &Call, resp: Response) -> Result<Vec<u8>, S3Error> {
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|source| S3Error::Transport {
                op: call.op,
                target: call.target.clone(),
                source,
            })
    }

    /// Creates the bucket, or says it was already there and ours.
    pub async fn create_bucket(&self, bucket: &str) -> Result<Change, S3Error> {
        check_bucket(bucket)?;
        let mut call = Call::new("create bucket", bucket, Method::PUT, format!("/{bucket}"));
        // us-east-1 is the one region AWS refuses an explicit LocationConstraint for.
        if self.cfg.region != "us-east-1" {
            call.body = format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.cfg.region
            )
            .into_bytes();
        }
        match self.send_ok(&call).await {
            Ok(_) => Ok(Change::Created),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(Change::AlreadyPresent),
            // MinIO and some servers say "exists" for our own bucket too: it is ours when we
            // can reach it with these credentials.
            Err(e) if e.code() == Some("BucketAlreadyExists") => {
                if self.head_bucket(bucket).await? {
                    Ok(Change::AlreadyPresent)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the bucket exists and these credentials may use it; `false` on 404 only.
    pub async fn head_bucket(&self, bucket: &str) -> Result<bool, S3Error> {
        check_bucket(bucket)?;
        let call = Call::new("head bucket", bucket, Method::HEAD, format!("/{bucket}"));
        let resp = self.send(&call).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.service_error(&call, resp).await),
        }
    }

    /// Proves these credentials may list the bucket. A GET, not a HEAD: a refusal then comes with
    /// its error code (`SignatureDoesNotMatch` vs `AccessDenied`), which a HEAD answer has no
    /// body to carry.
    pub async fn check_access(&self, bucket: &str) -> Result<(), S3Error> {
        check_bucket(bucket)?;
        let call = Call::new("check access", bucket, Method::GET, format!("/{bucket}"))
            .query("list-type", "2")
            .query("max-keys", "1");
        self.send_ok(&call).await.map(drop)
    }

    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), S3Error> {
        let call = object_call("put object", bucket, key, Method::PUT)?.body(body);
        self.send_ok(&call).await.map(drop)
    }

    /// Uploads a file: one PUT up to `multipart_threshold`, a multipart upload above it, with
    /// at most one part in memory. A failed multipart upload is aborted, so no partial object
    /// is ever listed. Returns the size uploaded.
    pub async fn put_object_from_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
    ) -> Result<u64, S3Error> {
        let target = format!("{bucket}/{key}");
        let io = |source| S3Error::Io {
            op: "put object",
            target: target.clone(),
            source,
        };
        let size = tokio::fs::metadata(path).await.map_err(io)?.len();
        if size <= self.cfg.multipart_threshold {
            let body = tokio::fs::read(path).await.map_err(io)?;
            self.put_object(bucket, key, body).await?;
            return Ok(size);
        }
        super::multipart::upload_file(self, bucket, key, path, size).await
    }

    /// Streams the object into `out`; returns the bytes written.
    pub async fn get_object<W: AsyncWrite + Unpin>(
        &self,
        bucket: &str,
        key: &str,
        out: &mut W,
    ) -> Result<u64, S3Error> {
        let mut call = object_call("get object", bucket, key, Method::GET)?;
        call.timeout = Some(self.cfg.download_timeout);
        let mut resp = self.send_ok(&call).await?;
        let mut written = 0u64;
        let io = |source| S3Error::Io {
            op: "get object",
            target: call.target.clone(),
            source,
        };
        while let Some(chunk) = resp.chunk().await.map_err(|source| S3Error::Transport {
            op: call.op,
            target: call.target.clone(),
            source,
        })? {
            out.write_all(&chunk).await.map_err(io)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(io)?;
        Ok(written)
    }

    /// Downloads to `path` through a temporary file in the same directory, so `path` is either
    /// the whole object or untouched.
    pub async fn get_object_to_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
    ) -> Result<u64, S3Error> {
        let target = format!("{bucket}/{key}");
        let io = |source| S3Error::Io {
            op: "get object",
            target: target.clone(),
            source,
        };
        let name = path
            .file_name()
            .ok_or_else(|| S3Error::Invalid(format!("not a file path: {}", path.display())))?;
        let tmp = path.with_file_name(format!(".{}.part", name.to_string_lossy()));
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let result = self.get_object(bucket, key, &mut file).await;
        let result = match result {
            Ok(n) => file.sync_all().await.map_err(io).map(|_| n),
            Err(e) => Err(e),
        };
        drop(file);
        match result {
            Ok(n) => {
                tokio::fs::rename(&tmp, path).await.map_err(io)?;
                Ok(n)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// `None` when the object does not exist.
    pub async fn head_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectMeta>, S3Error> {
        let call = object_call("head object", bucket, key, Method::HEAD)?;
        let resp = self.send(&call).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.service_error(&call, resp).await);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let size = header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| S3Error::Protocol {
                op: call.op,
                target: call.target.clone(),
                detail: "no Content-Length".into(),
            })?;
        Ok(Some(ObjectMeta {
            size,
            etag: header("etag"),
            last_modified: header("last-modified"),
        }))
    }

    /// Every object under `prefix`, following continuation tokens.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, S3Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct ListBucketResult {
            #[serde(default)]
            contents: Vec<ObjectInfo>,
            #[serde(default)]
            is_truncated: bool,
            next_continuation_token: Option<String>,
        }
        check_bucket(bucket)?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::new(
                "list objects",
                format!("{bucket}/{prefix}"),
                Method::GET,
                format!("/{bucket}"),
            )
            .query("list-type", "2")
            .query("prefix", prefix);
            if let Some(t) = &token {
                call = call.query("continuation-token", t);
            }
            let resp = self.send_ok(&call).await?;
            let body = self.body(&call, resp).await?;
            let page: ListBucketResult =
                quick_xml::de::from_reader(body.as_slice()).map_err(|e| S3Error::Protocol {
                    op: call.op,
                    target: call.target.clone(),
                    detail: format!("ListBucketResult: {e}"),
                })?;
            out.extend(page.contents);
            match (page.is_truncated, page.next_continuation_token) {
                (true, Some(t)) if !t.is_empty() => token = Some(t),
                (true, _) => {
                    return Err(S3Error::Protocol {
                        op: call.op,
                        target: call.target,
                        detail: "truncated listing without a continuation token".into(),
                    })
                }
                _ => return Ok(out),
            }
        }
    }

    /// Deleting an absent key succeeds, as in S3.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        let call = object_call("delete object", bucket, key, Method::DELETE)?;
        self.send_ok(&call).await.map(drop)
    }
}

pub(crate) fn object_call(
    op: &'static str,
    bucket: &str,
    key: &str,
    method: Method,
) -> Result<Call, S3Error> {
    check_bucket(bucket)?;
    check_key(key)?;
    Ok(Call::new(
        op,
        format!("{bucket}/{key}"),
        method,
        format!("/{bucket}/{key}"),
    ))
}

fn check_bucket(bucket: &str) -> Result<(), S3Error> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(S3Error::Invalid(format!(
            "bucket name {bucket:?}: 3-63 of a-z 0-9 . -"
        )))
    }
}

/// URL parsers fold `.` and `..` path segments, which would sign one path and send another.
fn check_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() || key.len() > 1024 || key.split('/').any(|s| s == "." || s == "..") {
        return Err(S3Error::Invalid(format!(
            "object key {key:?}: empty, too long, or with a . or .. segment"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_sent() {
        assert!(check_bucket("omnileads").is_ok());
        assert!(check_bucket("Bad_Bucket").is_err());
        assert!(check_key("backups/2026/a b.tar.gz").is_ok());
        assert!(check_key("a/../b").is_err());
        assert!(check_key("").is_err());
    }

    #[test]
    fn config_debug_hides_the_secret_and_aws_endpoint_has_the_region() {
        let cfg = ClientConfig::new("http://127.0.0.1:9000/", "", "ak", "very-secret");
        assert!(!format!("{cfg:?}").contains("very-secret"));
        assert_eq!(cfg.endpoint, "http://127.0.0.1:9000");
        assert_eq!(cfg.region, "us-east-1");
        assert_eq!(
            ClientConfig::aws_endpoint("sa-east-1"),
            "https://s3.sa-east-1.amazonaws.com"
        );
        assert!(Client::new(ClientConfig::new("ftp://x", "", "a", "b")).is_err());
    }
}
