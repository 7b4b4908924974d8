//! Multipart upload of a file: initiate, one part at a time from disk, complete; abort on any
//! failure, so an interrupted upload never shows up as an object (S3 lists an object only
//! after CompleteMultipartUpload).
use super::client::{object_call, Call, Client};
use super::error::S3Error;
use reqwest::Method;
use serde::Deserialize;
use std::path::Path;
use tokio::io::AsyncReadExt;

const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

/// The part size for `size` bytes: the configured one, at least S3's minimum, grown so the file
/// fits in 10 000 parts.
pub fn part_size(configured: u64, size: u64) -> u64 {
    configured.max(MIN_PART).max(size.div_ceil(MAX_PARTS))
}

pub(crate) async fn upload_file(
    client: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    size: u64,
) -> Result<u64, S3Error> {
    let upload_id = initiate(client, bucket, key).await?;
    match upload_parts(client, bucket, key, path, size, &upload_id).await {
        Ok(()) => Ok(size),
        Err(e) => {
            // Best effort: when the server is gone the abort fails too, and the parts it kept are
            // still not an object; its lifecycle (or a later abort) reclaims them.
            let call = object_call("abort multipart upload", bucket, key, Method::DELETE)?
                .query("uploadId", &upload_id);
            if let Err(abort) = client.send_ok(&call).await {
                tracing::warn!("{abort}");
            }
            Err(e)
        }
    }
}

async fn initiate(client: &Client, bucket: &str, key: &str) -> Result<String, S3Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct InitiateMultipartUploadResult {
        upload_id: String,
    }
    let call =
        object_call("initiate multipart upload", bucket, key, Method::POST)?.query("uploads", "");
    let resp = client.send_ok(&call).await?;
    let body = client.body(&call, resp).await?;
    let r: InitiateMultipartUploadResult =
        quick_xml::de::from_reader(body.as_slice()).map_err(|e| protocol(&call, e))?;
    Ok(r.upload_id)
}

async fn upload_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    size: u64,
    upload_id: &str,
) -> Result<(), S3Error> {
    let part = part_size(client.config().part_size, size);
    let target = format!("{bucket}/{key}");
    let io = |source| S3Error::Io {
        op: "upload part",
        target: target.clone(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut etags = Vec::new();
    let mut sent = 0u64;
    let mut number = 1u32;
    while sent < size {
        let len = part.min(size - sent);
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).await.map_err(io)?;
        let call = object_call("upload part", bucket, key, Method::PUT)?
            .query("partNumber", &number.to_string())
            .query("uploadId", upload_id)
            .body(buf);
        let resp = client.send_ok(&call).await?;
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| protocol(&call, "part answered without an ETag"))?;
        etags.push(etag);
        sent += len;
        number += 1;
    }
    complete(client, bucket, key, upload_id, &etags).await
}

async fn complete(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    etags: &[String],
) -> Result<(), S3Error> {
    let mut xml =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (i, etag) in etags.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            quick_xml::escape::escape(etag.as_str())
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let call = object_call("complete multipart upload", bucket, key, Method::POST)?
        .query("uploadId", upload_id)
        .body(xml.into_bytes());
    let resp = client.send_ok(&call).await?;
    let status = resp.status().as_u16();
    let body = client.body(&call, resp).await?;
    // S3 may answer 200 and still fail the completion, with an <Error> body.
    if String::from_utf8_lossy(&body).contains("<Error>") {
        let (code, message) = super::error::parse_error_body(status, &body);
        return Err(S3Error::Service {
            op: call.op,
            target: call.target,
            status,
            code,
            message,
        });
    }
    Ok(())
}

fn protocol(call: &Call, e: impl std::fmt::Display) -> S3Error {
    S3Error::Protocol {
        op: call.op,
        target: call.target.clone(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_respects_the_minimum_and_the_part_count_limit() {
        assert_eq!(part_size(1, 100), MIN_PART);
        assert_eq!(part_size(16 << 20, 100 << 20), 16 << 20);
        let huge = 1u64 << 40;
        assert!(huge.div_ceil(part_size(16 << 20, huge)) <= MAX_PARTS);
    }
}
