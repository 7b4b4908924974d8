//! AWS EC2 instance metadata service (IMDS).
//!
//! Followed: coreos/afterburn `src/providers/aws/mod.rs` (IMDSv2 token by `PUT
//! /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`, then reads carrying
//! `X-aws-ec2-metadata-token`; when the token cannot be had it carries on with IMDSv1, and
//! `meta-data/public-ipv4` is its `AWS_IPV4_PUBLIC`), and AWS's IMDS documentation, where
//! `public-ipv4` answers 404 on an instance without a public address.
use super::{ip_outcome, join, Http, Outcome, Reply, Request};
use reqwest::Method;

pub const TOKEN_PATH: &str = "/latest/api/token";
pub const PUBLIC_IPV4_PATH: &str = "/latest/meta-data/public-ipv4";
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// We need the token for one request; a short life limits what a leak could do.
const TOKEN_TTL_SECONDS: &str = "60";

/// Ask IMDS for the public IPv4, with an IMDSv2 session token when the service hands one out.
pub async fn lookup(http: &Http, base: &str) -> Outcome {
    let url = join(base, PUBLIC_IPV4_PATH);
    let token = fetch_token(http, base).await;
    let reply = match &token {
        Some(token) => {
            let headers = [(TOKEN_HEADER, token.as_str())];
            http.send(&Request::get(&url, &headers)).await
        }
        // IMDSv1: instances that predate IMDSv2 or run a proxy in front of IMDS that refuses
        // PUT. Where IMDSv1 is disabled this answers 401 and becomes a warning.
        None => http.send(&Request::get(&url, &[])).await,
    };
    match (ip_outcome(&url, reply), token.is_some()) {
        (Outcome::Failed(why), false) => Outcome::Failed(format!(
            "{why} (asked with IMDSv1, as no IMDSv2 token could be had from {})",
            join(base, TOKEN_PATH)
        )),
        (outcome, _) => outcome,
    }
}

/// An IMDSv2 token, or `None` to fall back to IMDSv1.
///
/// Any failure means "use IMDSv1": 403 (IMDS disabled for tokens or the PUT came through a
/// proxy: AWS refuses PUT with `X-Forwarded-For`), 404/405 (services without IMDSv2), and
/// transport errors. A PUT that times out is the classic container case where the response's
/// hop limit of 1 drops it while plain GETs still work, so transport errors are not retried
/// here: one timeout tells us enough, and the GET that follows has its own retries.
async fn fetch_token(http: &Http, base: &str) -> Option<String> {
    let url = join(base, TOKEN_PATH);
    let headers = [(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS)];
    let req = Request {
        method: Method::PUT,
        url: &url,
        headers: &headers,
        retry_transport: false,
    };
    match http.send(&req).await {
        // The token must fit in a header; a body that cannot is treated as no token.
        Reply::Body(body) => {
            let token = body.trim();
            let usable = !token.is_empty()
                && token.len() <= 1024
                && token.bytes().all(|b| b.is_ascii_graphic());
            usable.then(|| token.to_string())
        }
        Reply::NotFound | Reply::Status(_) | Reply::Transport(_) | Reply::Invalid(_) => None,
    }
}

/// `ds.meta-data.public-ipv4` as cloud-init's Ec2 datasource stores the crawled IMDS tree
/// (`crawl_metadata` keeps IMDS's own hyphenated keys); the underscore spellings are the
/// jinja-safe aliases `cloud-init query` shows, accepted in case a file was written that way.
pub fn from_instance_data(ds: &serde_json::Value) -> Option<(String, String)> {
    super::first_string(
        ds,
        &[
            &["meta-data", "public-ipv4"],
            &["meta_data", "public-ipv4"],
            &["meta_data", "public_ipv4"],
            &["meta-data", "public_ipv4"],
        ],
    )
}
