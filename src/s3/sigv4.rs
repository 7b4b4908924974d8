//! AWS Signature Version 4 with the S3 rules (single-chunk payloads, header-based auth).
//!
//! S3 differs from the other AWS services in two ways that matter here: the path is encoded
//! once (never double-encoded) with `/` kept, and the payload hash is sent in
//! `x-amz-content-sha256`, where `UNSIGNED-PAYLOAD` is allowed.
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// Sent instead of a payload hash when the body is not hashed before it is sent.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// sha256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// One request as the signer sees it. `path` is the decoded path (`/bucket/some key`);
/// `query` holds decoded pairs. `headers` must hold every header to sign, including `host`,
/// `x-amz-date` and `x-amz-content-sha256`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

/// What the signer needs besides the request. `secret_key` is only ever hashed.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl std::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish()
    }
}

/// A UTC instant in the two forms SigV4 uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmzDate {
    /// `20130524T000000Z`
    pub timestamp: String,
    /// `20130524`
    pub date: String,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HTTP `Date` (`Sun, 06 Dec 2026 23:18:21 GMT`) as Unix seconds.
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, se] = hms.as_slice() else {
        return None;
    };
    // Days from civil (H. Hinnant), the inverse of civil_from_days.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

impl AmzDate {
    pub fn now() -> AmzDate {
        AmzDate::from_unix(unix_now())
    }

    pub fn from_unix(secs: u64) -> AmzDate {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let date = format!("{y:04}{m:02}{d:02}");
        let timestamp = format!(
            "{date}T{:02}{:02}{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        );
        AmzDate { timestamp, date }
    }

    /// Parses `YYYYMMDDTHHMMSSZ`.
    pub fn parse(timestamp: &str) -> Option<AmzDate> {
        let ok = timestamp.len() == 16
            && timestamp.as_bytes()[8] == b'T'
            && timestamp.ends_with('Z')
            && timestamp[..8]
                .bytes()
                .chain(timestamp[9..15].bytes())
                .all(|b| b.is_ascii_digit());
        ok.then(|| AmzDate {
            timestamp: timestamp.to_string(),
            date: timestamp[..8].to_string(),
        })
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm), so no date
/// crate is needed for one format.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 3986 unreserved characters are kept, everything else is `%XX` (upper case), as S3 wants.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query string as it is both signed and sent, so the two can never differ.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    hs.sort();
    let canonical = hs
        .iter()
        .map(|(k, v)| format!("{k}:{v}\n"))
        .collect::<String>();
    let signed = hs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (canonical, signed)
}

pub fn canonical_request(req: &Request<'_>) -> String {
    let (headers, signed) = canonical_headers(req.headers);
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(req.path, false),
        canonical_query(req.query),
        headers,
        signed,
        req.payload_hash
    )
}

fn scope(signer: &Signer<'_>, when: &AmzDate) -> String {
    format!(
        "{}/{}/{}/aws4_request",
        when.date, signer.region, signer.service
    )
}

pub fn string_to_sign(signer: &Signer<'_>, when: &AmzDate, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        when.timestamp,
        scope(signer, when),
        sha256_hex(canonical_request.as_bytes())
    )
}

pub fn signing_key(signer: &Signer<'_>, when: &AmzDate) -> [u8; 32] {
    let k_date = hmac(
        format!("AWS4{}", signer.secret_key).as_bytes(),
        when.date.as_bytes(),
    );
    let k_region = hmac(&k_date, signer.region.as_bytes());
    let k_service = hmac(&k_region, signer.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub fn signature(signer: &Signer<'_>, when: &AmzDate, req: &Request<'_>) -> String {
    let sts = string_to_sign(signer, when, &canonical_request(req));
    hex::encode(hmac(&signing_key(signer, when), sts.as_bytes()))
}

/// The `Authorization` header value for `req`.
pub fn authorization(signer: &Signer<'_>, when: &AmzDate, req: &Request<'_>) -> String {
    let (_, signed) = canonical_headers(req.headers);
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={},Signature={}",
        signer.access_key,
        scope(signer, when),
        signed,
        signature(signer, when, req)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's published examples: "Signature Calculations for the Authorization Header:
    // Transferring Payload in a Single Chunk" (S3 API reference, sig-v4-header-based-auth).
    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "examplebucket.s3.amazonaws.com";

    fn signer() -> Signer<'static> {
        Signer {
            access_key: AK,
            secret_key: SK,
            region: "us-east-1",
            service: "s3",
        }
    }

    fn when() -> AmzDate {
        AmzDate::parse("20130524T000000Z").unwrap()
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aws_example_get_object_with_range() {
        let headers = h(&[
            ("Host", HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert_eq!(
            string_to_sign(&signer(), &when(), &canonical_request(&req)),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            authorization(&signer(), &when(), &req),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn aws_example_put_object() {
        let body = b"Welcome to Amazon S3.";
        let hash = sha256_hex(body);
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let headers = h(&[
            ("Host", HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", &hash),
        ]);
        let req = Request {
            method: "PUT",
            path: "/test$file.text",
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        };
        assert!(canonical_request(&req).starts_with("PUT\n/test%24file.text\n\n"));
        assert_eq!(
            signature(&signer(), &when(), &req),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn aws_example_get_bucket_lifecycle() {
        let headers = h(&[
            ("Host", HOST),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ]);
        let query = vec![("lifecycle".to_string(), String::new())];
        let req = Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert!(canonical_request(&req).starts_with("GET\n/\nlifecycle=\n"));
        assert_eq!(
            signature(&signer(), &when(), &req),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn aws_example_list_objects() {
        let headers = h(&[
            ("Host", HOST),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ]);
        // Given out of order on purpose: canonicalization sorts them.
        let query = vec![
            ("prefix".to_string(), "J".to_string()),
            ("max-keys".to_string(), "2".to_string()),
        ];
        let req = Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert!(canonical_request(&req).starts_with("GET\n/\nmax-keys=2&prefix=J\n"));
        assert_eq!(
            signature(&signer(), &when(), &req),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn s3_encoding_keeps_slashes_in_keys_and_encodes_the_rest_once() {
        assert_eq!(
            uri_encode("/b/dir/a b+c%.tar.gz", false),
            "/b/dir/a%20b%2Bc%25.tar.gz"
        );
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("ñ", false), "%C3%B1");
        let q = vec![
            ("prefix".into(), "backups/2026 x".into()),
            ("list-type".into(), "2".into()),
        ];
        assert_eq!(canonical_query(&q), "list-type=2&prefix=backups%2F2026%20x");
    }

    #[test]
    fn dates() {
        assert_eq!(AmzDate::from_unix(1_369_353_600), when());
        assert_eq!(
            AmzDate::from_unix(951_782_400).timestamp,
            "20000229T000000Z"
        );
        assert_eq!(
            AmzDate::from_unix(1_798_761_599).timestamp,
            "20261231T235959Z"
        );
        assert!(AmzDate::parse("2013-05-24").is_none());
        assert_eq!(
            parse_http_date("Fri, 24 May 2013 00:00:00 GMT"),
            Some(1_369_353_600)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            parse_http_date("Thu, 31 Dec 2026 23:59:59 GMT"),
            Some(1_798_761_599)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(
            parse_http_date("Fri, 24 May 2013 00:00:00 GMT"),
            Some(1_369_353_600)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            parse_http_date("Thu, 31 Dec 2026 23:59:59 GMT"),
            Some(1_798_761_599)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", signer()).contains(SK));
    }
}
