//! Cloud metadata services and echo services: where the public IPv4 comes from.
//!
//! One small module per provider knows its paths, headers and cloud-init instance-data keys;
//! this module holds what they share: the HTTP client, its retry policy, and the rule for what
//! counts as a public IPv4 answer.
use crate::facts::platform::Platform;
use crate::retry::Retry;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use std::net::Ipv4Addr;
use std::time::Duration;

pub mod aws;
pub mod azure;
pub mod digitalocean;
pub mod echo;
pub mod gcp;
pub mod hetzner;
pub mod oracle;

/// Base URLs of every external endpoint detection may call. All configurable so tests point them at 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub aws: String,
    pub gcp: String,
    pub azure: String,
    pub digitalocean: String,
    pub oracle: String,
    pub hetzner: String,
    /// "What is my IP" services, tried in order; each must answer a bare IPv4.
    pub echo: Vec<String>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            aws: "http://169.254.169.254".into(),
            gcp: "http://metadata.google.internal".into(),
            azure: "http://169.254.169.254".into(),
            digitalocean: "http://169.254.169.254".into(),
            oracle: "http://169.254.169.254".into(),
            hetzner: "http://169.254.169.254".into(),
            echo: vec![
                "https://checkip.amazonaws.com".into(),
                "https://ifconfig.co/ip".into(),
                "https://ipinfo.io/ip".into(),
            ],
        }
    }
}

/// Timeouts and retries applied to every metadata/echo request.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    /// Extra attempts after the first, for transient failures (connect errors, timeouts, 5xx).
    pub retries: u32,
    pub backoff: Duration,
}

impl HttpPolicy {
    /// Doubling stops at 64 times `backoff`, so the 10 retries the schema allows cannot add
    /// minutes to detection.
    pub fn retry(&self) -> Retry {
        Retry::new(self.retries, self.backoff).max_delay(self.backoff.saturating_mul(64))
    }
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(200),
        }
    }
}

/// What one source said about the public IPv4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A public IPv4.
    Found(Ipv4Addr),
    /// The source answered properly that this host has no public IPv4 (404, empty answer).
    /// Not a fault: a host behind NAT or without an external address is normal.
    Absent(String),
    /// The source could not be asked or answered nonsense; the sentence is a warning.
    Failed(String),
}

/// The largest answer read from a service; an IPv4 fits in 15 bytes, the Azure load-balancer
/// document in a few KiB. Anything bigger is not what we asked for (a captive portal page…).
pub const MAX_BODY: usize = 64 * 1024;

/// An HTTP client with the policy applied to every request.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    policy: HttpPolicy,
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a str,
    pub headers: &'a [(&'static str, &'a str)],
    /// Retry connect errors and timeouts. Off where a failure already tells us enough (the
    /// AWS token request), so a silent endpoint costs one timeout rather than several.
    pub retry_transport: bool,
}

impl<'a> Request<'a> {
    pub fn get(url: &'a str, headers: &'a [(&'static str, &'a str)]) -> Self {
        Request {
            method: Method::GET,
            url,
            headers,
            retry_transport: true,
        }
    }
}

/// The final answer to a request, after retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 2xx with its body.
    Body(String),
    /// 404: the service has no such item; never retried.
    NotFound,
    /// Any other status, after retries for 5xx/429 ran out.
    Status(StatusCode),
    /// No HTTP answer at all (connect error, timeout, broken body), after retries ran out.
    Transport(String),
    /// The request could not be made or its answer cannot be used, and asking again would
    /// not change that (malformed URL, oversized answer).
    Invalid(String),
}

impl Http {
    /// A client for link-local metadata services.
    ///
    /// `no_proxy`: a proxy cannot reach this host's link-local metadata address, and must not
    /// see the AWS token. No redirects: a metadata service has no reason to send us elsewhere.
    /// Metadata services speak plain HTTP, so the system's CA store is not loaded (that costs
    /// tens of milliseconds per client).
    pub fn for_metadata(policy: &HttpPolicy) -> Result<Http, String> {
        Self::build(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .tls_built_in_root_certs(false),
            policy,
        )
    }

    /// A client for echo services.
    ///
    /// Also `no_proxy`, on purpose: the question is which address this host's own traffic
    /// leaves from (SIP and RTP go out directly, never through an HTTP proxy). Through a proxy
    /// the echo service would report the proxy's address, which is wrong for that. When
    /// direct egress is blocked, "no public IP found" is the honest answer.
    pub fn for_echo(policy: &HttpPolicy) -> Result<Http, String> {
        Self::build(
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(3)),
            policy,
        )
    }

    fn build(builder: reqwest::ClientBuilder, policy: &HttpPolicy) -> Result<Http, String> {
        let client = builder
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.total_timeout)
            .user_agent(concat!("omlboot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", root_cause(&e)))?;
        Ok(Http {
            client,
            policy: policy.clone(),
        })
    }

    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// Send `req`, retrying transient failures (5xx, 429, and if allowed connect errors and
    /// timeouts) up to `policy.retries` more times with exponential backoff. 404 and other
    /// 4xx are final at once: asking again will not change the answer.
    pub async fn send(&self, req: &Request<'_>) -> Reply {
        // A malformed URL is a configuration mistake: asking again cannot help.
        if let Err(e) = reqwest::Url::parse(req.url) {
            return Reply::Invalid(format!("not a usable URL ({e})"));
        }
        let headers = match header_map(req.headers) {
            Ok(h) => h,
            Err(e) => return Reply::Invalid(e),
        };
        let outcome = self
            .policy
            .retry()
            .run(
                |_| async {
                    match self.send_once(req, &headers).await {
                        Reply::Body(body) => Ok(body),
                        other => Err(other),
                    }
                },
                |reply, _| match reply {
                    Reply::Status(s) => s.is_server_error() || *s == StatusCode::TOO_MANY_REQUESTS,
                    Reply::Transport(_) => req.retry_transport,
                    Reply::Body(_) | Reply::NotFound | Reply::Invalid(_) => false,
                },
            )
            .await;
        match outcome.result {
            Ok(body) => Reply::Body(body),
            Err(Reply::Transport(e)) if outcome.attempts > 1 => {
                Reply::Transport(format!("{e} (after {} attempts)", outcome.attempts))
            }
            Err(other) => other,
        }
    }

    async fn send_once(&self, req: &Request<'_>, headers: &HeaderMap) -> Reply {
        let sent = self
            .client
            .request(req.method.clone(), req.url)
            .headers(headers.clone())
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return Reply::Transport(self.describe(&e)),
        };
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Reply::NotFound;
        }
        if !status.is_success() {
            return Reply::Status(status);
        }
        // Read by chunks so an endless or huge body cannot eat memory.
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Reply::Invalid(format!(
                            "the answer is larger than {MAX_BODY} bytes"
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Reply::Transport(self.describe(&e)),
            }
        }
        Reply::Body(String::from_utf8_lossy(&body).into_owned())
    }

    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_connect() && e.is_timeout() {
            format!(
                "cannot connect within {} ms",
                self.policy.connect_timeout.as_millis()
            )
        } else if e.is_connect() {
            format!("cannot connect: {}", root_cause(e))
        } else if e.is_timeout() {
            format!(
                "no answer within {} ms",
                self.policy.total_timeout.as_millis()
            )
        } else {
            root_cause(e)
        }
    }
}

fn header_map(headers: &[(&'static str, &str)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        // The value may come from a service (the AWS token): never echo it in the message.
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value for header {name} is not a valid header value"))?;
        // from_bytes, not from_static: the latter panics on a bad name instead of failing.
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// The innermost cause of an error ("Connection refused (os error 111)"): reqwest's own
/// layers ("error sending request for url (…): client error (Connect): …") add nothing a
/// person can act on, and the callers name the URL themselves.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `true` for an address that can be reached from the Internet: not private, loopback,
/// link-local, shared (CGNAT), documentation, benchmarking, reserved, multicast, broadcast or
/// unspecified. (A stable stand-in for the unstable `Ipv4Addr::is_global`.)
pub fn is_public_ipv4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

/// Parse a text answer as a public IPv4; the error names the value and why it is not one.
pub fn parse_public_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    let text = text.trim();
    let ip: Ipv4Addr = text
        .parse()
        .map_err(|_| format!("{}, which is not an IPv4 address", snippet(text)))?;
    if is_public_ipv4(ip) {
        Ok(ip)
    } else {
        Err(format!(
            "{ip}, which is not a public address (private, loopback, link-local or reserved)"
        ))
    }
}

/// A short, printable excerpt of untrusted text for a warning.
pub fn snippet(text: &str) -> String {
    const MAX: usize = 40;
    let mut s: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        s.push('…');
    }
    format!("{s:?}")
}

/// Turn the reply to a "give me the public IPv4 as text" request into an outcome; `url` names
/// the source in the sentences.
pub fn ip_outcome(url: &str, reply: Reply) -> Outcome {
    match reply {
        Reply::Body(body) if body.trim().is_empty() => {
            Outcome::Absent(format!("{url} answered empty: no public IPv4 there"))
        }
        Reply::Body(body) => match parse_public_ipv4(&body) {
            Ok(ip) => Outcome::Found(ip),
            Err(why) => Outcome::Failed(format!("{url} answered {why}; ignored")),
        },
        Reply::NotFound => Outcome::Absent(format!("{url} answered 404: no public IPv4 there")),
        Reply::Status(s) => Outcome::Failed(format!("{url} answered HTTP {s}")),
        Reply::Transport(e) | Reply::Invalid(e) => {
            Outcome::Failed(format!("{url} could not be read: {e}"))
        }
    }
}

/// Join a base URL and a path without doubling or dropping the slash.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Whether `platform` has a metadata service that can name the public IPv4: not Oracle (see
/// `oracle.rs`), and nothing is asked on an unknown platform.
pub fn has_public_ip_service(platform: Platform) -> bool {
    !matches!(platform, Platform::Oracle | Platform::Unknown)
}

/// Ask the identified platform's metadata service. `None` when it has none (see
/// `has_public_ip_service`).
pub async fn lookup(platform: Platform, endpoints: &Endpoints, http: &Http) -> Option<Outcome> {
    match platform {
        Platform::Aws => Some(aws::lookup(http, &endpoints.aws).await),
        Platform::Gcp => Some(gcp::lookup(http, &endpoints.gcp).await),
        Platform::Azure => Some(azure::lookup(http, &endpoints.azure).await),
        Platform::DigitalOcean => Some(digitalocean::lookup(http, &endpoints.digitalocean).await),
        Platform::Hetzner => Some(hetzner::lookup(http, &endpoints.hetzner).await),
        Platform::Oracle | Platform::Unknown => None,
    }
}

/// The public IPv4 cloud-init recorded for `platform`, as `(address, key path)`.
/// `Err` carries a warning when a value is there but is not a public IPv4.
pub fn from_instance_data(
    platform: Platform,
    data: &serde_json::Value,
) -> Option<Result<(Ipv4Addr, String), String>> {
    let ds = data.get("ds")?;
    let (value, path) = match platform {
        Platform::Aws => aws::from_instance_data(ds),
        Platform::Azure => azure::from_instance_data(ds),
        Platform::DigitalOcean => digitalocean::from_instance_data(ds),
        Platform::Hetzner => hetzner::from_instance_data(ds),
        Platform::Gcp => gcp::from_instance_data(ds),
        Platform::Oracle => oracle::from_instance_data(ds),
        Platform::Unknown => None,
    }?;
    Some(match parse_public_ipv4(&value) {
        Ok(ip) => Ok((ip, path)),
        Err(why) => Err(format!(
            "cloud-init instance data {path} holds {why}; asking the metadata service instead"
        )),
    })
}

/// First string found at any of `paths` (each a list of object keys) under `v`.
pub fn first_string(v: &serde_json::Value, paths: &[&[&str]]) -> Option<(String, String)> {
    paths.iter().find_map(|path| {
        let mut cur = v;
        for key in *path {
            cur = cur.get(*key)?;
        }
        let s = cur.as_str()?.trim();
        (!s.is_empty()).then(|| (s.to_string(), format!("ds.{}", path.join("."))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_not_public() {
        for ok in ["34.1.2.3", "8.8.8.8", "52.95.110.1"] {
            assert!(is_public_ipv4(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.20",
            "203.0.113.5",
            "224.0.0.1",
            "255.255.255.255",
            "250.1.1.1",
        ] {
            assert!(!is_public_ipv4(bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse_public_ipv4(" 34.1.2.3\n").is_ok());
        assert!(parse_public_ipv4("<html>").is_err());
        assert!(parse_public_ipv4("999.1.1.1").is_err());
        assert!(parse_public_ipv4("34.1.2.3 extra").is_err());
    }

    #[test]
    fn join_slashes() {
        assert_eq!(join("http://h/", "/a/b"), "http://h/a/b");
        assert_eq!(join("http://h", "a"), "http://h/a");
    }
}
