//! One error type for S3 and MinIO admin calls. It names the operation and the bucket/key so a
//! failed bootstrap or backup says what it was doing; it never holds a secret (the request
//! body of admin calls is not kept, and no secret goes into a URL).
use super::crypto::CryptoError;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The server answered with an error status; `code`/`message` come from its XML (S3) or
    /// JSON (MinIO admin) body, or from the status when there is no body (HEAD).
    #[error("{op} {target}: HTTP {status} {code}: {message}")]
    Service {
        op: &'static str,
        target: String,
        status: u16,
        code: String,
        message: String,
    },
    /// No usable answer: connect refused, timeout, connection dropped.
    #[error("{op} {target}: {source}")]
    Transport {
        op: &'static str,
        target: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{op} {target}: {source}")]
    Io {
        op: &'static str,
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The server answered 2xx with something this client cannot read.
    #[error("{op} {target}: unexpected response: {detail}")]
    Protocol {
        op: &'static str,
        target: String,
        detail: String,
    },
    #[error("{op} {target}: {source}")]
    Crypto {
        op: &'static str,
        target: String,
        #[source]
        source: CryptoError,
    },
    /// Bad endpoint, bucket or key given by the caller.
    #[error("invalid S3 request: {0}")]
    Invalid(String),
}

impl S3Error {
    /// The S3 / MinIO error code, e.g. `NoSuchBucket`, `SignatureDoesNotMatch`.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The credentials were refused (unknown access key or wrong secret), as opposed to a
    /// missing permission.
    pub fn is_bad_credentials(&self) -> bool {
        matches!(
            self.code(),
            Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "XMinioAdminNoSuchUser")
        )
    }
}

/// Code and message from an error body. S3 answers `<Error><Code>..</Code><Message>..`,
/// MinIO's admin API `{"Code":..,"Message":..}`.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            if let Some(code) = get("Code") {
                return (code, get("Message").unwrap_or_default());
            }
        }
    } else if text.starts_with('<') {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct XmlError {
            code: Option<String>,
            message: Option<String>,
        }
        if let Ok(XmlError {
            code: Some(code),
            message,
        }) = quick_xml::de::from_str::<XmlError>(text)
        {
            return (code, message.unwrap_or_default());
        }
    }
    let code = match status {
        301 => "PermanentRedirect",
        400 => "BadRequest",
        403 => "AccessDenied",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        _ => "HTTPError",
    };
    // Keep a short excerpt of an unexpected body: a proxy's HTML error page says a lot.
    let excerpt: String = text.chars().take(200).collect();
    (code.to_string(), excerpt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_xml_minio_json_and_bodiless_errors() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>"#;
        assert_eq!(
            parse_error_body(404, xml),
            (
                "NoSuchBucket".into(),
                "The specified bucket does not exist".into()
            )
        );
        let json = br#"{"Code":"XMinioAdminNoSuchUser","Message":"The specified user does not exist.","Resource":"/minio/admin/v3/user-info"}"#;
        assert_eq!(parse_error_body(404, json).0, "XMinioAdminNoSuchUser");
        assert_eq!(
            parse_error_body(403, b""),
            ("AccessDenied".into(), String::new())
        );
    }
}
