//! AWS Signature Version 4 (header form), as S3 and MinIO's admin API use it: verify on the server side, sign on
//! the client side (the uwsgi stand-in's bucket check).

use crate::http::{aws_encode, parse_query, pct_decode, Request};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn canonical_uri(raw_path: &str) -> String {
    let p = aws_encode(&pct_decode(raw_path), true);
    if p.is_empty() { "/".into() } else { p }
}

fn canonical_query(raw_query: &str) -> String {
    let mut q: Vec<(String, String)> =
        parse_query(raw_query).into_iter().map(|(k, v)| (aws_encode(&k, false), aws_encode(&v, false))).collect();
    q.sort();
    q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn trim_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Days since 1970-01-01 -> (y, m, d).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// 20240101T000000Z
pub fn amz_date(t: i64) -> String {
    let (y, m, d) = civil(t.div_euclid(86400));
    let s = t.rem_euclid(86400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// RFC 7231 date for Last-Modified.
pub fn http_date(t: i64) -> String {
    let (y, m, d) = civil(t.div_euclid(86400));
    let s = t.rem_euclid(86400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(t.div_euclid(86400)).rem_euclid(7) as usize];
    let mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m as usize - 1];
    format!("{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT", s / 3600, s / 60 % 60, s % 60)
}

/// ISO 8601 for XML listings.
pub fn iso_date(t: i64) -> String {
    let (y, m, d) = civil(t.div_euclid(86400));
    let s = t.rem_euclid(86400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z", s / 3600, s / 60 % 60, s % 60)
}

fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 {
        return None;
    }
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0, 4)?, n(4, 6)?, n(6, 8)?, n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // days from civil
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se)
}

/// What the Authorization header says.
pub struct Auth {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub enum AuthError {
    /// No Authorization header: an anonymous request.
    Anonymous,
    /// (S3 error code, message)
    Bad(&'static str, String),
}

pub fn parse_auth(req: &Request) -> Result<Auth, AuthError> {
    let Some(h) = req.header("authorization") else {
        return Err(AuthError::Anonymous);
    };
    let Some(rest) = h.strip_prefix("AWS4-HMAC-SHA256") else {
        return Err(AuthError::Bad("SignatureVersionNotSupported", "only AWS4-HMAC-SHA256 is supported".into()));
    };
    let mut cred = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v.to_string());
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v.to_string());
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v.to_string());
        }
    }
    let (Some(cred), Some(signed), Some(sig)) = (cred, signed, sig) else {
        return Err(AuthError::Bad("AuthorizationHeaderMalformed", "missing Credential, SignedHeaders or Signature".into()));
    };
    let c: Vec<&str> = cred.split('/').collect();
    if c.len() != 5 || c[4] != "aws4_request" {
        return Err(AuthError::Bad("AuthorizationHeaderMalformed", format!("bad credential scope {cred:?}")));
    }
    Ok(Auth {
        access_key: c[0].into(),
        date: c[1].into(),
        region: c[2].into(),
        service: c[3].into(),
        signed_headers: signed.split(';').map(String::from).collect(),
        signature: sig,
    })
}

/// Verifies the signature of `req` with `secret`. Err((code, message)) in S3 terms.
pub fn verify(req: &Request, auth: &Auth, secret: &str) -> Result<(), (&'static str, String)> {
    let amz = req.header("x-amz-date").or_else(|| req.header("date")).unwrap_or("");
    let t = parse_amz_date(amz).ok_or(("AccessDenied", format!("missing or bad X-Amz-Date {amz:?}")))?;
    if (t - now_unix()).abs() > 15 * 60 {
        return Err(("RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.".into()));
    }
    if !amz.starts_with(&auth.date) {
        return Err(("AuthorizationHeaderMalformed", "credential date does not match X-Amz-Date".into()));
    }
    let payload = req.header("x-amz-content-sha256").unwrap_or("UNSIGNED-PAYLOAD").to_string();
    if payload.len() == 64 && payload.chars().all(|c| c.is_ascii_hexdigit()) && payload != sha256_hex(&req.body) {
        return Err(("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.".into()));
    }
    let mut ch = String::new();
    for h in &auth.signed_headers {
        let v = req.header(h).ok_or(("AccessDenied", format!("signed header {h} not present")))?;
        ch += &format!("{h}:{}\n", trim_value(v));
    }
    let creq = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(&req.raw_path),
        canonical_query(&req.raw_query),
        ch,
        auth.signed_headers.join(";"),
        payload
    );
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let sts = format!("AWS4-HMAC-SHA256\n{amz}\n{scope}\n{}", sha256_hex(creq.as_bytes()));
    let want = hex(&hmac(&signing_key(secret, &auth.date, &auth.region, &auth.service), sts.as_bytes()));
    if want != auth.signature {
        return Err(("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.".into()));
    }
    Ok(())
}

/// Signs a request (client side). Returns the headers to send (host, x-amz-date, x-amz-content-sha256,
/// authorization). `path` is the already-encoded path, `query` the raw query.
pub fn sign(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    body: &[u8],
    access_key: &str,
    secret: &str,
    region: &str,
) -> Vec<(String, String)> {
    let t = now_unix();
    let amz = amz_date(t);
    let date = &amz[..8];
    let payload = sha256_hex(body);
    let ch = format!("host:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz}\n");
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let creq = format!("{method}\n{}\n{}\n{ch}\n{signed}\n{payload}", canonical_uri(path), canonical_query(query));
    let scope = format!("{date}/{region}/s3/aws4_request");
    let sts = format!("AWS4-HMAC-SHA256\n{amz}\n{scope}\n{}", sha256_hex(creq.as_bytes()));
    let sig = hex(&hmac(&signing_key(secret, date, region, "s3"), sts.as_bytes()));
    vec![
        ("Host".into(), host.into()),
        ("x-amz-date".into(), amz),
        ("x-amz-content-sha256".into(), payload),
        ("Authorization".into(), format!("AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={sig}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_700_000_000), "20231114T221320Z");
        assert_eq!(parse_amz_date("20231114T221320Z"), Some(1_700_000_000));
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    fn request(method: &str, path: &str, query: &str, headers: Vec<(String, String)>, body: &[u8]) -> Request {
        Request {
            method: method.into(),
            raw_path: path.into(),
            raw_query: query.into(),
            headers: headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn sign_then_verify() {
        let h = sign("PUT", "127.0.0.1:9000", "/b/a%20b.txt", "x=1&a=b%2Fc", b"data", "AK", "SECRET", "us-east-1");
        let req = request("PUT", "/b/a%20b.txt", "x=1&a=b%2Fc", h.clone(), b"data");
        let auth = parse_auth(&req).ok().unwrap();
        assert_eq!(auth.access_key, "AK");
        assert!(verify(&req, &auth, "SECRET").is_ok());
        assert_eq!(verify(&req, &auth, "OTHER").err().unwrap().0, "SignatureDoesNotMatch");
        let tampered = request("PUT", "/b/a%20b.txt", "x=1&a=b%2Fc", h, b"dat4");
        assert_eq!(verify(&tampered, &auth, "SECRET").err().unwrap().0, "XAmzContentSHA256Mismatch");
    }

    /// AWS's documented example (GET Object, "Example: GET Object" in the SigV4 S3 docs).
    #[test]
    fn aws_example_signing_key() {
        let k = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3");
        let creq = "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let sts = format!("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n{}", sha256_hex(creq.as_bytes()));
        assert_eq!(hex(&hmac(&k, sts.as_bytes())), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }
}
