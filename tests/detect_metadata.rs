//! Platform identification and public-IPv4 discovery, against fixture roots and scripted
//! HTTP servers on 127.0.0.1. No traffic leaves the machine: every endpoint, echo services
//! included, points at a server started here.
use omlboot::facts::metadata::{Endpoints, HttpPolicy};
use omlboot::facts::platform::{identify, Platform};
use omlboot::facts::public_ip::{discover, read_instance_data, PublicIp};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// A scripted HTTP/1.1 server: each request takes the next step of the script.

#[derive(Debug, Clone)]
enum Step {
    /// Answer with this status and body, then close the connection.
    Reply(u16, String),
    /// Read the request, then never answer (the connection stays open).
    Hang,
    /// Answer 200 with this body, one byte every `ms` milliseconds (a slow or trickling server).
    Drip(String, u64),
    /// Answer 200 with these raw bytes as the body (not text at all).
    Bytes(Vec<u8>),
}

fn ok(body: &str) -> Step {
    Step::Reply(200, body.to_string())
}

fn status(code: u16) -> Step {
    Step::Reply(code, format!("status {code}\n"))
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    url: String,
    log: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(script: Vec<Step>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (log2, conns2) = (log.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns2.fetch_add(1, Ordering::SeqCst);
                let (log, script) = (log2.clone(), script.clone());
                tokio::spawn(serve(stream, log, script));
            }
        });
        Server {
            url: format!("http://{addr}"),
            log,
            connections,
            task,
        }
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Step>>>,
) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // Drain a request body, if any, so the client is not cut off mid-send.
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - (head_end + 4);
    while have < length {
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    log.lock().unwrap().push(Seen {
        method,
        target,
        headers,
    });
    let step = script.lock().unwrap().pop_front();
    let (code, body) = match step {
        Some(Step::Reply(code, body)) => (code, body),
        Some(Step::Drip(body, ms)) => {
            let head = format!(
                "HTTP/1.1 200 X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for b in body.bytes() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if stream.write_all(&[b]).await.is_err() {
                    return;
                }
            }
            let _ = stream.shutdown().await;
            return;
        }
        Some(Step::Bytes(body)) => {
            let head = format!(
                "HTTP/1.1 200 X\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
            return;
        }
        Some(Step::Hang) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        // A request the test did not expect; 418 is never retried, and counts show it.
        None => (418, "script exhausted\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Shared test setup.

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metadata")
        .join(case)
}

/// Short timeouts so the whole suite stays fast.
fn policy() -> HttpPolicy {
    HttpPolicy {
        connect_timeout: Duration::from_millis(200),
        total_timeout: Duration::from_millis(300),
        retries: 2,
        backoff: Duration::from_millis(10),
    }
}

/// Every cloud's base URL points at `trap` except `platform`'s, which points at `target`.
fn endpoints(platform: Platform, target: &str, trap: &str, echo: Vec<String>) -> Endpoints {
    let pick = |p: Platform| {
        if p == platform {
            target.to_string()
        } else {
            trap.to_string()
        }
    };
    Endpoints {
        aws: pick(Platform::Aws),
        gcp: pick(Platform::Gcp),
        azure: pick(Platform::Azure),
        digitalocean: pick(Platform::DigitalOcean),
        oracle: pick(Platform::Oracle),
        hetzner: pick(Platform::Hetzner),
        echo,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

const TOKEN: &str = "AQAEAHdbQ0token-abc==";

/// What a provider's requests must look like.
struct Spec {
    platform: Platform,
    name: &'static str,
    path: &'static str,
    header: Option<(&'static str, &'static str)>,
    /// AWS: an IMDSv2 token PUT comes first.
    token: bool,
    /// Azure: when the first answer is "none", the load-balancer document is read next.
    second_path: Option<&'static str>,
}

const AWS: Spec = Spec {
    platform: Platform::Aws,
    name: "aws",
    path: "/latest/meta-data/public-ipv4",
    header: None,
    token: true,
    second_path: None,
};
const GCP: Spec = Spec {
    platform: Platform::Gcp,
    name: "gcp",
    path: "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip",
    header: Some(("metadata-flavor", "Google")),
    token: false,
    second_path: None,
};
const AZURE: Spec = Spec {
    platform: Platform::Azure,
    name: "azure",
    path: "/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text",
    header: Some(("metadata", "true")),
    token: false,
    second_path: Some("/metadata/loadbalancer?api-version=2020-10-01&format=json"),
};
const DIGITALOCEAN: Spec = Spec {
    platform: Platform::DigitalOcean,
    name: "digitalocean",
    path: "/metadata/v1/interfaces/public/0/ipv4/address",
    header: None,
    token: false,
    second_path: None,
};
const HETZNER: Spec = Spec {
    platform: Platform::Hetzner,
    name: "hetzner",
    path: "/hetzner/v1/metadata/public-ipv4",
    header: None,
    token: false,
    second_path: None,
};

impl Spec {
    /// The server script: the token answer first for AWS, then `steps`.
    fn script(&self, steps: Vec<Step>) -> Vec<Step> {
        let mut all = Vec::new();
        if self.token {
            all.push(ok(&format!("{TOKEN}\n")));
        }
        all.extend(steps);
        all
    }

    fn url(&self, server: &Server) -> String {
        format!("{}{}", server.url, self.path)
    }

    fn source(&self) -> String {
        format!("metadata:{}", self.name)
    }

    /// The requests are: (AWS) one token PUT, then exactly `gets` reads of the address, each
    /// with the provider's header, then `seconds` reads of the second path.
    fn assert_requests(&self, server: &Server, gets: usize, seconds: usize) {
        let reqs = server.requests();
        let mut it = reqs.iter();
        if self.token {
            let put = it.next().expect("token request");
            assert_eq!(put.method, "PUT");
            assert_eq!(put.target, "/latest/api/token");
            assert_eq!(
                put.header("x-aws-ec2-metadata-token-ttl-seconds"),
                Some("60")
            );
        }
        for _ in 0..gets {
            let get = it.next().expect("address request");
            assert_eq!(get.method, "GET");
            assert_eq!(get.target, self.path);
            if let Some((name, value)) = self.header {
                assert_eq!(get.header(name), Some(value), "header {name}");
            }
            if self.token {
                assert_eq!(get.header("x-aws-ec2-metadata-token"), Some(TOKEN));
            }
        }
        for _ in 0..seconds {
            let get = it.next().expect("second request");
            assert_eq!(get.method, "GET");
            assert_eq!(Some(get.target.as_str()), self.second_path);
            if let Some((name, value)) = self.header {
                assert_eq!(get.header(name), Some(value), "header {name}");
            }
        }
        let rest: Vec<_> = it.collect();
        assert!(rest.is_empty(), "unexpected requests: {rest:?}");
    }

    /// How many reads of the second path follow a "no public IP" answer.
    fn seconds_after_absent(&self) -> usize {
        usize::from(self.second_path.is_some())
    }
}

async fn run(
    platform: Platform,
    eps: &Endpoints,
    use_echo: bool,
) -> (Option<PublicIp>, Vec<String>) {
    discover(&fixture("no-dmi"), None, platform, eps, &policy(), use_echo).await
}

// ---------------------------------------------------------------------------------------------
// Per-provider scenarios.

async fn scenario_success(spec: &Spec) {
    let server = Server::start(spec.script(vec![ok("34.120.5.6\n")])).await;
    let trap = Server::start(vec![]).await;
    let eps = endpoints(
        spec.platform,
        &server.url,
        &trap.url,
        vec![trap.url.clone()],
    );
    let (found, warnings) = run(spec.platform, &eps, true).await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("34.120.5.6"),
            source: spec.source()
        })
    );
    assert_eq!(warnings, Vec::<String>::new());
    spec.assert_requests(&server, 1, 0);
    assert_eq!(trap.connections(), 0, "no other cloud and no echo asked");
}

async fn scenario_not_found(spec: &Spec) {
    // 404 means "no public IP": not retried, and the echo services are asked next.
    let mut steps = vec![status(404)];
    if spec.second_path.is_some() {
        steps.push(status(404));
    }
    let server = Server::start(spec.script(steps.clone())).await;
    let echo = Server::start(vec![ok("35.180.1.2\n")]).await;
    let trap = Server::start(vec![]).await;
    let echo_url = format!("{}/ip", echo.url);
    let eps = endpoints(
        spec.platform,
        &server.url,
        &trap.url,
        vec![echo_url.clone()],
    );
    let (found, warnings) = run(spec.platform, &eps, true).await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("35.180.1.2"),
            source: format!("echo:{echo_url}")
        })
    );
    assert_eq!(warnings, Vec::<String>::new());
    spec.assert_requests(&server, 1, spec.seconds_after_absent());
    assert_eq!(echo.requests().len(), 1);
    assert_eq!(echo.requests()[0].target, "/ip");

    // Without echo: nothing found, one sentence saying why, still a single request.
    let server = Server::start(spec.script(steps)).await;
    let eps = endpoints(
        spec.platform,
        &server.url,
        &trap.url,
        vec![trap.url.clone()],
    );
    let (found, warnings) = run(spec.platform, &eps, false).await;
    assert_eq!(found, None);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert!(
        w.starts_with(&format!("no public IPv4 found on {}: ", spec.name)),
        "{w}"
    );
    assert!(
        w.contains(&format!("{} answered 404", spec.url(&server))),
        "{w}"
    );
    assert!(w.ends_with("echo services were not asked"), "{w}");
    spec.assert_requests(&server, 1, spec.seconds_after_absent());
    assert_eq!(trap.connections(), 0);
}

async fn scenario_retry(spec: &Spec) {
    let server = Server::start(spec.script(vec![status(503), status(429), ok("34.120.9.9")])).await;
    let trap = Server::start(vec![]).await;
    let eps = endpoints(spec.platform, &server.url, &trap.url, vec![]);
    let (found, warnings) = run(spec.platform, &eps, false).await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("34.120.9.9"),
            source: spec.source()
        })
    );
    assert_eq!(warnings, Vec::<String>::new());
    spec.assert_requests(&server, 3, 0);

    // Retries are bounded: 1 + policy.retries attempts, then a warning.
    let server = Server::start(spec.script(vec![status(500); 5])).await;
    let eps = endpoints(spec.platform, &server.url, &trap.url, vec![]);
    let (found, warnings) = run(spec.platform, &eps, false).await;
    assert_eq!(found, None);
    assert_eq!(
        warnings[0],
        format!(
            "{} answered HTTP 500 Internal Server Error",
            spec.url(&server)
        )
    );
    spec.assert_requests(&server, 3, 0);
    assert_eq!(trap.connections(), 0);
}

async fn scenario_timeout(spec: &Spec) {
    let server = Server::start(spec.script(vec![Step::Hang; 3])).await;
    let trap = Server::start(vec![]).await;
    let eps = endpoints(spec.platform, &server.url, &trap.url, vec![]);
    let start = Instant::now();
    let (found, warnings) = run(spec.platform, &eps, false).await;
    let elapsed = start.elapsed();
    let p = policy();
    let attempts = p.retries + 1;
    let limit =
        p.total_timeout * attempts + Duration::from_millis(10 + 20) + Duration::from_millis(700);
    assert!(elapsed < limit, "took {elapsed:?}, limit {limit:?}");
    assert!(
        elapsed >= p.total_timeout * attempts,
        "took {elapsed:?}: did it retry?"
    );
    assert_eq!(found, None);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(
        warnings[0],
        format!(
            "{} could not be read: no answer within 300 ms (after 3 attempts)",
            spec.url(&server)
        )
    );
    assert_eq!(
        warnings[1],
        format!(
            "no public IPv4 found on {}: echo services were not asked",
            spec.name
        )
    );
    spec.assert_requests(&server, 3, 0);
}

async fn scenario_garbage(spec: &Spec) {
    for (body, why) in [
        (
            "<html><body>Welcome to the portal</body></html>",
            "which is not an IPv4 address",
        ),
        ("999.1.1.1", "which is not an IPv4 address"),
        ("34.1.2.3 and more", "which is not an IPv4 address"),
        ("10.20.30.40", "which is not a public address"),
        ("169.254.10.1", "which is not a public address"),
    ] {
        let server = Server::start(spec.script(vec![ok(body)])).await;
        let echo = Server::start(vec![ok("35.180.7.7")]).await;
        let eps = endpoints(
            spec.platform,
            &server.url,
            &echo.url,
            vec![echo.url.clone()],
        );
        let (found, warnings) = run(spec.platform, &eps, true).await;
        assert_eq!(
            found,
            Some(PublicIp {
                address: ip("35.180.7.7"),
                source: format!("echo:{}", echo.url)
            }),
            "answer {body:?}"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = &warnings[0];
        assert!(w.starts_with(&spec.url(&server)), "{w}");
        assert!(w.contains(why), "{w}");
        assert!(w.ends_with("; ignored"), "{w}");
        // A wrong answer is an answer: not retried.
        spec.assert_requests(&server, 1, 0);
        assert_eq!(echo.requests().len(), 1);
    }
}

macro_rules! provider_suite {
    ($name:ident, $spec:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn success() {
                scenario_success(&$spec).await
            }

            #[tokio::test]
            async fn not_found_is_none_and_moves_to_echo() {
                scenario_not_found(&$spec).await
            }

            #[tokio::test]
            async fn server_errors_are_retried_then_succeed() {
                scenario_retry(&$spec).await
            }

            #[tokio::test]
            async fn silent_server_times_out_within_bounds() {
                scenario_timeout(&$spec).await
            }

            #[tokio::test]
            async fn garbage_answers_are_rejected() {
                scenario_garbage(&$spec).await
            }
        }
    };
}

provider_suite!(aws, AWS);
provider_suite!(gcp, GCP);
provider_suite!(azure, AZURE);
provider_suite!(digitalocean, DIGITALOCEAN);
provider_suite!(hetzner, HETZNER);

// ---------------------------------------------------------------------------------------------
// AWS: IMDSv2 token flow and IMDSv1 fallback.

#[tokio::test]
async fn aws_imdsv2_put_token_then_get_with_token() {
    let server = Server::start(vec![ok(TOKEN), ok("54.210.33.7")]).await;
    let eps = endpoints(Platform::Aws, &server.url, &server.url, vec![]);
    let (found, warnings) = run(Platform::Aws, &eps, false).await;
    assert_eq!(found.map(|p| p.address), Some(ip("54.210.33.7")));
    assert!(warnings.is_empty(), "{warnings:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("PUT", "/latest/api/token")
    );
    assert_eq!(
        reqs[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("60")
    );
    assert_eq!(reqs[0].header("x-aws-ec2-metadata-token"), None);
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].target.as_str()),
        ("GET", "/latest/meta-data/public-ipv4")
    );
    assert_eq!(reqs[1].header("x-aws-ec2-metadata-token"), Some(TOKEN));
    // The token never shows up in what detection reports.
    assert!(!format!("{warnings:?}").contains(TOKEN));
}

#[tokio::test]
async fn aws_falls_back_to_imdsv1_when_token_put_is_refused() {
    for refused in [403, 404, 405] {
        let server = Server::start(vec![status(refused), ok("54.210.33.8")]).await;
        let eps = endpoints(Platform::Aws, &server.url, &server.url, vec![]);
        let (found, warnings) = run(Platform::Aws, &eps, false).await;
        assert_eq!(
            found,
            Some(PublicIp {
                address: ip("54.210.33.8"),
                source: "metadata:aws".into()
            }),
            "PUT answered {refused}"
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2, "PUT {refused} is not retried: {reqs:?}");
        assert_eq!(reqs[0].method, "PUT");
        assert_eq!(reqs[1].method, "GET");
        assert_eq!(reqs[1].target, "/latest/meta-data/public-ipv4");
        assert_eq!(reqs[1].header("x-aws-ec2-metadata-token"), None);
    }
}

#[tokio::test]
async fn aws_token_put_that_hangs_costs_one_timeout_then_imdsv1() {
    let server = Server::start(vec![Step::Hang, ok("54.210.33.9")]).await;
    let eps = endpoints(Platform::Aws, &server.url, &server.url, vec![]);
    let start = Instant::now();
    let (found, warnings) = run(Platform::Aws, &eps, false).await;
    let elapsed = start.elapsed();
    assert_eq!(found.map(|p| p.address), Some(ip("54.210.33.9")));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(
        elapsed < Duration::from_millis(300 + 500),
        "took {elapsed:?}"
    );
    let reqs = server.requests();
    assert_eq!(
        reqs.len(),
        2,
        "the PUT is not retried on a timeout: {reqs:?}"
    );
    assert_eq!(reqs[1].header("x-aws-ec2-metadata-token"), None);
}

#[tokio::test]
async fn aws_imdsv1_disabled_and_no_token_is_a_warning() {
    let server = Server::start(vec![status(403), status(401)]).await;
    let eps = endpoints(Platform::Aws, &server.url, &server.url, vec![]);
    let (found, warnings) = run(Platform::Aws, &eps, false).await;
    assert_eq!(found, None);
    assert_eq!(
        warnings[0],
        format!(
            "{0}/latest/meta-data/public-ipv4 answered HTTP 401 Unauthorized (asked with IMDSv1, as no IMDSv2 token could be had from {0}/latest/api/token)",
            server.url
        )
    );
    assert_eq!(server.requests().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Azure: Standard-SKU public IPs live in the load-balancer document.

#[tokio::test]
async fn azure_empty_public_ip_reads_loadbalancer_document() {
    let lb = r#"{"loadbalancer":{"publicIpAddresses":[
        {"frontendIpAddress":"[2603:10e1:100:2::1:1]","privateIpAddress":"[ace:cab:deca:deed::1]"},
        {"frontendIpAddress":"20.62.14.9","privateIpAddress":"10.0.0.4"}],
        "inboundRules":[],"outboundRules":[]}}"#;
    let server = Server::start(vec![ok(""), ok(lb)]).await;
    let eps = endpoints(Platform::Azure, &server.url, &server.url, vec![]);
    let (found, warnings) = run(Platform::Azure, &eps, false).await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("20.62.14.9"),
            source: "metadata:azure".into()
        })
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    AZURE.assert_requests(&server, 1, 1);
}

#[tokio::test]
async fn azure_loadbalancer_garbage_is_a_warning() {
    let server = Server::start(vec![ok("\n"), ok("<html>oops</html>")]).await;
    let eps = endpoints(Platform::Azure, &server.url, &server.url, vec![]);
    let (found, warnings) = run(Platform::Azure, &eps, false).await;
    assert_eq!(found, None);
    assert_eq!(
        warnings[0],
        format!(
            "{}/metadata/loadbalancer?api-version=2020-10-01&format=json answered \"<html>oops</html>\", which is not JSON; ignored",
            server.url
        )
    );
}

#[tokio::test]
async fn oversized_answer_is_refused_without_retry() {
    let huge = "1".repeat(100 * 1024);
    let server = Server::start(vec![Step::Reply(200, huge)]).await;
    let eps = endpoints(Platform::Gcp, &server.url, &server.url, vec![]);
    let (found, warnings) = run(Platform::Gcp, &eps, false).await;
    assert_eq!(found, None);
    assert_eq!(
        warnings[0],
        format!(
            "{} could not be read: the answer is larger than 65536 bytes",
            GCP.url(&server)
        )
    );
    GCP.assert_requests(&server, 1, 0);
}

// ---------------------------------------------------------------------------------------------
// Oracle: OCI's metadata service has no public IP, so it is not asked at all.

#[tokio::test]
async fn oracle_asks_no_metadata_and_uses_echo() {
    let oci = Server::start(vec![ok("[]")]).await;
    let echo = Server::start(vec![ok("130.61.4.5\n")]).await;
    let eps = endpoints(Platform::Oracle, &oci.url, &oci.url, vec![echo.url.clone()]);
    let (found, warnings) = run(Platform::Oracle, &eps, true).await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("130.61.4.5"),
            source: format!("echo:{}", echo.url)
        })
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(oci.connections(), 0);
}

#[tokio::test]
async fn oracle_without_echo_explains_why_there_is_no_address() {
    let oci = Server::start(vec![]).await;
    let eps = endpoints(Platform::Oracle, &oci.url, &oci.url, vec![oci.url.clone()]);
    let (found, warnings) = run(Platform::Oracle, &eps, false).await;
    assert_eq!(found, None);
    assert_eq!(
        warnings,
        vec!["no public IPv4 found on oracle: Oracle Cloud's metadata service does not expose the public IPv4 (its VNIC data holds only private addresses); echo services were not asked".to_string()]
    );
    assert_eq!(oci.connections(), 0);
}

// ---------------------------------------------------------------------------------------------
// Echo services.

#[tokio::test]
async fn echo_garbage_then_valid_names_the_second_service() {
    let first = Server::start(vec![ok("<!DOCTYPE html><html>captive</html>")]).await;
    let second = Server::start(vec![ok("35.181.9.10\n")]).await;
    let trap = Server::start(vec![]).await;
    let (u1, u2) = (format!("{}/ip", first.url), format!("{}/ip", second.url));
    let eps = endpoints(
        Platform::Unknown,
        &trap.url,
        &trap.url,
        vec![u1.clone(), u2.clone()],
    );
    let (found, warnings) = run(Platform::Unknown, &eps, true).await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("35.181.9.10"),
            source: format!("echo:{u2}")
        })
    );
    assert_eq!(
        warnings,
        vec![format!(
            "{u1} answered \"<!DOCTYPE html><html>captive</html>\", which is not an IPv4 address; ignored"
        )]
    );
    assert_eq!(first.requests().len(), 1);
    assert_eq!(second.requests().len(), 1);
    assert_eq!(second.requests()[0].method, "GET");
    assert_eq!(
        trap.connections(),
        0,
        "unknown platform: no metadata service asked"
    );
}

#[tokio::test]
async fn echo_all_failing_gives_none_and_one_warning_each() {
    let first = Server::start(vec![status(404)]).await;
    let second = Server::start(vec![ok("0.0.0.0")]).await;
    let eps = endpoints(
        Platform::Unknown,
        &first.url,
        &first.url,
        vec![first.url.clone(), second.url.clone()],
    );
    let (found, warnings) = run(Platform::Unknown, &eps, true).await;
    assert_eq!(found, None);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with(&format!("{} answered 404", first.url)));
    assert!(warnings[1].starts_with(&format!("{} answered 0.0.0.0", second.url)));
}

#[tokio::test]
async fn unknown_platform_without_echo_makes_no_request() {
    let trap = Server::start(vec![]).await;
    let eps = endpoints(
        Platform::Unknown,
        &trap.url,
        &trap.url,
        vec![trap.url.clone()],
    );
    let start = Instant::now();
    let (found, warnings) = run(Platform::Unknown, &eps, false).await;
    // Generous for a loaded machine, yet below a single request timeout (300 ms).
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(found, None);
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(trap.connections(), 0);
}

#[tokio::test]
async fn echo_disabled_after_metadata_404_makes_no_echo_request() {
    let server = Server::start(vec![status(404)]).await;
    let echo = Server::start(vec![]).await;
    let eps = endpoints(
        Platform::Gcp,
        &server.url,
        &echo.url,
        vec![echo.url.clone()],
    );
    let (found, _) = run(Platform::Gcp, &eps, false).await;
    assert_eq!(found, None);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(echo.connections(), 0);
}

#[tokio::test]
async fn unreachable_echo_is_a_warning_not_a_hang() {
    // Bind then drop a listener: its port now refuses connections.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/ip");
    let eps = endpoints(Platform::Unknown, &url, &url, vec![url.clone()]);
    let start = Instant::now();
    let (found, warnings) = run(Platform::Unknown, &eps, true).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(found, None);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with(&format!("{url} could not be read: cannot connect")),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].ends_with("(after 3 attempts)"),
        "{}",
        warnings[0]
    );
}

#[tokio::test]
async fn echo_url_secrets_stay_out_of_source_and_warnings() {
    let first = Server::start(vec![ok("garbage")]).await;
    let second = Server::start(vec![ok("35.181.9.11")]).await;
    let eps = endpoints(
        Platform::Unknown,
        &first.url,
        &first.url,
        vec![
            format!("{}/ip?token=SECRET1", first.url),
            format!(
                "http://user:SECRET2@{}/ip",
                second.url.trim_start_matches("http://")
            ),
        ],
    );
    let (found, warnings) = run(Platform::Unknown, &eps, true).await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("35.181.9.11"),
            source: format!("echo:{}/ip", second.url)
        })
    );
    assert_eq!(
        warnings,
        vec![format!(
            "{}/ip answered \"garbage\", which is not an IPv4 address; ignored",
            first.url
        )]
    );
    // The secrets were still sent: only the output hides them.
    assert_eq!(first.requests()[0].target, "/ip?token=SECRET1");
    assert!(second.requests()[0].header("authorization").is_some());
}

// ---------------------------------------------------------------------------------------------
// cloud-init instance data.

#[tokio::test]
async fn instance_data_public_ip_means_no_http_request() {
    for (case, platform, address) in [
        ("ci-aws", Platform::Aws, "54.210.33.7"),
        ("ci-azure", Platform::Azure, "20.51.7.9"),
        ("ci-digitalocean", Platform::DigitalOcean, "159.89.120.44"),
    ] {
        let root = fixture(case);
        let data = read_instance_data(&root).expect("instance data");
        let (identified, _) = identify(&root, Some(&data));
        assert_eq!(identified, platform, "{case}");
        let trap = Server::start(vec![]).await;
        let eps = endpoints(platform, &trap.url, &trap.url, vec![trap.url.clone()]);
        let (found, warnings) = discover(&root, Some(&data), platform, &eps, &policy(), true).await;
        assert_eq!(
            found,
            Some(PublicIp {
                address: ip(address),
                source: "cloud-init".into()
            }),
            "{case}"
        );
        assert!(warnings.is_empty(), "{case}: {warnings:?}");
        assert_eq!(trap.connections(), 0, "{case}");
    }
}

#[tokio::test]
async fn instance_data_without_public_ip_asks_the_metadata_service() {
    for (case, spec) in [
        ("ci-aws-no-public", &AWS),
        ("ci-gcp", &GCP),
        ("ci-azure-standard-sku", &AZURE),
        ("ci-hetzner", &HETZNER),
    ] {
        let root = fixture(case);
        let data = read_instance_data(&root).expect("instance data");
        assert_eq!(identify(&root, Some(&data)).0, spec.platform, "{case}");
        let server = Server::start(spec.script(vec![ok("34.141.2.3")])).await;
        let eps = endpoints(spec.platform, &server.url, &server.url, vec![]);
        let (found, warnings) =
            discover(&root, Some(&data), spec.platform, &eps, &policy(), false).await;
        assert_eq!(
            found,
            Some(PublicIp {
                address: ip("34.141.2.3"),
                source: spec.source()
            }),
            "{case}"
        );
        assert!(warnings.is_empty(), "{case}: {warnings:?}");
        spec.assert_requests(&server, 1, 0);
    }
}

#[tokio::test]
async fn instance_data_of_another_cloud_is_not_read() {
    // The AWS instance data holds a public IP, but the caller says GCP: the GCP service decides.
    let data = read_instance_data(&fixture("ci-aws")).unwrap();
    let server = Server::start(vec![ok("34.141.2.4")]).await;
    let eps = endpoints(Platform::Gcp, &server.url, &server.url, vec![]);
    let (found, _) = discover(
        &fixture("ci-aws"),
        Some(&data),
        Platform::Gcp,
        &eps,
        &policy(),
        false,
    )
    .await;
    assert_eq!(found.map(|p| p.source), Some("metadata:gcp".to_string()));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn unknown_ec2_lookalike_does_not_trust_its_instance_data() {
    let root = fixture("ci-ec2-unknown");
    let data = read_instance_data(&root).unwrap();
    let (platform, _) = identify(&root, Some(&data));
    assert_eq!(platform, Platform::Unknown);
    let trap = Server::start(vec![]).await;
    let eps = endpoints(platform, &trap.url, &trap.url, vec![trap.url.clone()]);
    let (found, warnings) = discover(&root, Some(&data), platform, &eps, &policy(), false).await;
    assert_eq!(found, None);
    assert!(warnings.is_empty());
    assert_eq!(trap.connections(), 0);
}

#[tokio::test]
async fn instance_data_with_a_private_address_is_a_warning_and_asks_the_service() {
    let data = serde_json::json!({
        "v1": {"cloud_name": "aws", "platform": "ec2"},
        "ds": {"meta-data": {"public-ipv4": "10.1.2.3", "local-ipv4": "10.1.2.3"}}
    });
    let server = Server::start(AWS.script(vec![ok("54.210.40.1")])).await;
    let eps = endpoints(Platform::Aws, &server.url, &server.url, vec![]);
    let (found, warnings) = discover(
        &fixture("no-dmi"),
        Some(&data),
        Platform::Aws,
        &eps,
        &policy(),
        false,
    )
    .await;
    assert_eq!(
        found,
        Some(PublicIp {
            address: ip("54.210.40.1"),
            source: "metadata:aws".into()
        })
    );
    assert_eq!(
        warnings,
        vec!["cloud-init instance data ds.meta-data.public-ipv4 holds 10.1.2.3, which is not a public address (private, loopback, link-local or reserved); asking the metadata service instead".to_string()]
    );
    AWS.assert_requests(&server, 1, 0);
}

#[test]
fn read_instance_data_missing_or_broken_is_none() {
    assert_eq!(read_instance_data(&fixture("no-dmi")), None);
    assert_eq!(read_instance_data(&fixture("ci-broken")), None);
    let data = read_instance_data(&fixture("ci-hetzner")).unwrap();
    assert_eq!(data["v1"]["cloud_name"], "hetzner");
}

// ---------------------------------------------------------------------------------------------
// Platform identification.

#[test]
fn identify_from_dmi() {
    let cases: &[(&str, Platform, &str)] = &[
        ("aws-nitro", Platform::Aws, "dmi sys_vendor=Amazon EC2"),
        (
            "aws-xen",
            Platform::Aws,
            "hypervisor uuid=ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8",
        ),
        (
            "aws-uuid-swapped",
            Platform::Aws,
            "dmi product_uuid=45E12AEC-DCD1-B213-94ED-012345ABCDEF",
        ),
        ("gcp", Platform::Gcp, "dmi product_name=Google Compute Engine"),
        (
            "gcp-serial-only",
            Platform::Gcp,
            "dmi product_serial=GoogleCloud-1234567890ABCDEF",
        ),
        (
            "azure",
            Platform::Azure,
            "dmi chassis_asset_tag=7783-7084-3265-9085-8269-3286-77",
        ),
        (
            "digitalocean",
            Platform::DigitalOcean,
            "dmi sys_vendor=DigitalOcean",
        ),
        (
            "oracle",
            Platform::Oracle,
            "dmi chassis_asset_tag=OracleCloud.com",
        ),
        ("hetzner", Platform::Hetzner, "dmi sys_vendor=Hetzner"),
        (
            "hyperv-onprem",
            Platform::Unknown,
            "no supported cloud matched (dmi sys_vendor=Microsoft Corporation, product_name=Virtual Machine, chassis_asset_tag=3322-5556-0123-4545-9899-1234-56)",
        ),
        (
            "qemu-kvm",
            Platform::Unknown,
            "no supported cloud matched (dmi sys_vendor=QEMU, product_name=Standard PC (Q35 + ICH9, 2009))",
        ),
        ("no-dmi", Platform::Unknown, "no supported cloud matched (no DMI data)"),
    ];
    for (case, platform, evidence) in cases {
        let got = identify(&fixture(case), None);
        assert_eq!(got, (*platform, evidence.to_string()), "{case}");
    }
}

#[test]
fn identify_from_instance_data_first() {
    let cases: &[(&str, Platform, &str)] = &[
        ("ci-aws", Platform::Aws, "cloud-init v1.cloud_name=aws"),
        ("ci-gcp", Platform::Gcp, "cloud-init v1.cloud_name=gce"),
        // cloud-init beats DMI.
        ("ci-gce-on-amazon-dmi", Platform::Gcp, "cloud-init v1.cloud_name=gce"),
        ("ci-azure", Platform::Azure, "cloud-init v1.cloud_name=azure"),
        (
            "ci-digitalocean",
            Platform::DigitalOcean,
            "cloud-init v1.cloud_name=digitalocean",
        ),
        ("ci-oracle", Platform::Oracle, "cloud-init v1.cloud_name=oracle"),
        ("ci-hetzner", Platform::Hetzner, "cloud-init v1.cloud_name=hetzner"),
        // A datasource that names no cloud leaves the decision to DMI.
        ("ci-nocloud-on-hetzner", Platform::Hetzner, "dmi sys_vendor=Hetzner"),
        (
            "ci-ec2-unknown",
            Platform::Unknown,
            "no supported cloud matched (cloud-init v1.cloud_name=unknown, v1.platform=ec2; dmi sys_vendor=QEMU, product_name=Standard PC (i440FX + PIIX, 1996))",
        ),
        ("ci-broken", Platform::Unknown, "no supported cloud matched (no DMI data)"),
    ];
    for (case, platform, evidence) in cases {
        let root = fixture(case);
        let data = read_instance_data(&root);
        let got = identify(&root, data.as_ref());
        assert_eq!(got, (*platform, evidence.to_string()), "{case}");
    }
}

#[test]
fn identify_uses_platform_when_cloud_name_is_missing() {
    let data = serde_json::json!({"v1": {"platform": "hetzner"}});
    assert_eq!(
        identify(&fixture("no-dmi"), Some(&data)),
        (
            Platform::Hetzner,
            "cloud-init v1.platform=hetzner".to_string()
        )
    );
    // The Ec2 datasource's platform alone does not mean AWS.
    let data = serde_json::json!({"v1": {"platform": "ec2"}});
    assert_eq!(
        identify(&fixture("no-dmi"), Some(&data)).0,
        Platform::Unknown
    );
}

#[test]
fn platform_and_public_ip_serialize_as_documented() {
    assert_eq!(
        serde_json::to_string(&Platform::DigitalOcean).unwrap(),
        "\"digitalocean\""
    );
    assert_eq!(serde_json::to_string(&Platform::Aws).unwrap(), "\"aws\"");
    let p = PublicIp {
        address: ip("34.1.2.3"),
        source: "metadata:aws".into(),
    };
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        serde_json::json!({"address": "34.1.2.3", "source": "metadata:aws"})
    );
}

// ---- issue 10, item 4: a metadata server that answers slowly or with garbage ----------------

/// A server that trickles its answer: within the total timeout it is read; past it the request
/// is cut at the timeout on every attempt, and the warning names the endpoint.
#[tokio::test]
async fn trickling_metadata_server_is_bounded_by_the_total_timeout() {
    let p = policy(); // total 300 ms, 2 retries
                      // 9 bytes at 10 ms each: well inside 300 ms.
    let server = Server::start(vec![Step::Drip("35.1.2.3\n".into(), 10)]).await;
    let trap = Server::start(vec![]).await;
    let eps = endpoints(Platform::Gcp, &server.url, &trap.url, vec![]);
    let (found, _) = run(Platform::Gcp, &eps, false).await;
    assert_eq!(found.map(|f| f.address), Some(ip("35.1.2.3")));

    // 9 bytes at 100 ms each: every attempt is cut at 300 ms.
    let server = Server::start(vec![Step::Drip("35.1.2.3\n".into(), 100); 3]).await;
    let eps = endpoints(Platform::Gcp, &server.url, &trap.url, vec![]);
    let start = Instant::now();
    let (found, warnings) = run(Platform::Gcp, &eps, false).await;
    let took = start.elapsed();
    assert_eq!(found, None);
    let attempts = p.retries + 1;
    assert!(
        took < p.total_timeout * attempts + Duration::from_millis(700),
        "took {took:?}"
    );
    assert!(
        warnings[0].starts_with(&format!("{}/computeMetadata/", server.url))
            && warnings[0].contains("no answer within 300 ms (after 3 attempts)"),
        "{warnings:?}"
    );
    assert_eq!(server.requests().len(), 3);
    assert_eq!(trap.connections(), 0);
}

/// Binary garbage and an HTML page instead of an address: a warning naming the endpoint, no
/// address, no retry (asking again gives the same garbage), and nothing printed raw.
#[tokio::test]
async fn binary_or_html_metadata_answer_is_a_warning() {
    for body in [
        vec![0xff, 0xfe, 0x00, 0x1b, b'[', b'2', b'J', 0x80, 0x07],
        b"<html><body>Captive portal: please log in</body></html>".to_vec(),
    ] {
        let server = Server::start(vec![Step::Bytes(body.clone())]).await;
        let trap = Server::start(vec![]).await;
        let eps = endpoints(Platform::Gcp, &server.url, &trap.url, vec![]);
        let (found, warnings) = run(Platform::Gcp, &eps, false).await;
        assert_eq!(found, None);
        let w = &warnings[0];
        assert!(
            w.starts_with(&server.url) && w.contains("not an IPv4 address"),
            "{w}"
        );
        assert!(
            !w.contains('\u{1b}') && !w.contains('\0'),
            "control bytes printed raw: {w:?}"
        );
        assert_eq!(server.requests().len(), 1, "garbage is not retried");
    }
}
