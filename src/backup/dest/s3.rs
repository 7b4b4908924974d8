//! S3 as a [`Destination`], over the small [`ObjectStore`] adapter that [`Store`] implements for
//! the S3 client ([`crate::s3::Client`]): put_object of the final key is atomic in S3 (an
//! interrupted upload, multipart or not, leaves no object; a failed multipart upload is aborted),
//! and the manifest is put last, so a half-done backup is never listed.
use super::{check_name, Destination, ObjectStore};
use crate::s3::{Client, ClientConfig, S3Error};
use anyhow::{Context as _, Result};
use std::future::Future;
use std::path::Path;

/// The async S3 client behind the synchronous [`ObjectStore`]: one bucket, each call run to the
/// end on the store's own current-thread runtime (the client's connection pool lives there).
pub struct Store {
    client: Client,
    bucket: String,
    /// `s3://bucket at endpoint`, for errors.
    describe: String,
    rt: tokio::runtime::Runtime,
}

impl Store {
    pub fn new(cfg: ClientConfig, bucket: &str) -> Result<Store> {
        let describe = format!("s3://{bucket} at {}", cfg.endpoint);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime for S3 calls")?;
        // reqwest builds its client inside a runtime context.
        let client = {
            let _g = rt.enter();
            Client::new(cfg).with_context(|| format!("S3 client for {describe}"))?
        };
        Ok(Store {
            client,
            bucket: bucket.to_string(),
            describe,
            rt,
        })
    }

    /// Run `f` to completion; from inside another runtime (an async caller) on a scoped thread,
    /// since a runtime cannot block inside another.
    fn block<T: Send>(&self, f: impl Future<Output = Result<T, S3Error>> + Send) -> Result<T> {
        let r = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(f))
                    .join()
                    .expect("S3 call panicked")
            })
        } else {
            self.rt.block_on(f)
        };
        r.map_err(|e| self.explain(e))
    }

    fn explain(&self, e: S3Error) -> anyhow::Error {
        let hint = if e.is_bad_credentials() {
            "the credentials were refused (backup_bucket_key_id / backup_bucket_secret_key, or bucket_access_key / bucket_secret_key for the host's MinIO)"
        } else if e.code() == Some("NoSuchBucket") {
            "the bucket does not exist"
        } else if e.code() == Some("AccessDenied") {
            "access denied: the key has no read/write permission on the bucket"
        } else if matches!(e, S3Error::Transport { .. }) {
            "the endpoint cannot be reached (backup_bucket_url)"
        } else {
            ""
        };
        let e = anyhow::Error::new(e);
        if hint.is_empty() {
            e.context(format!("backup destination {}", self.describe))
        } else {
            e.context(format!("backup destination {}: {hint}", self.describe))
        }
    }
}

impl ObjectStore for Store {
    fn put_file(&self, local: &Path, key: &str) -> Result<()> {
        self.block(self.client.put_object_from_file(&self.bucket, key, local))
            .map(drop)
    }
    fn get_file(&self, key: &str, local: &Path) -> Result<()> {
        self.block(self.client.get_object_to_file(&self.bucket, key, local))
            .map(drop)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .block(self.client.list_objects(&self.bucket, prefix))?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.block(self.client.delete_object(&self.bucket, key))
    }
}

impl S3<Store> {
    /// A destination `s3://bucket/prefix` on the server `cfg` points at.
    pub fn connect(cfg: ClientConfig, bucket: &str, prefix: &str) -> Result<S3<Store>> {
        let endpoint = cfg.endpoint.clone();
        let prefix = prefix.trim_matches('/').to_string();
        Ok(S3 {
            store: Store::new(cfg, bucket)?,
            url: if prefix.is_empty() {
                format!("s3://{bucket} at {endpoint}")
            } else {
                format!("s3://{bucket}/{prefix} at {endpoint}")
            },
            prefix,
        })
    }
}

pub struct S3<O: ObjectStore> {
    pub store: O,
    /// Describes the bucket (no credentials), e.g. `s3://backups/oml`.
    pub url: String,
    /// Key prefix inside the bucket, without slashes at the ends ("" for none).
    pub prefix: String,
}

impl<O: ObjectStore> S3<O> {
    fn key(&self, remote: &str) -> Result<String> {
        check_name(remote)?;
        Ok(if self.prefix.is_empty() {
            remote.to_string()
        } else {
            format!("{}/{remote}", self.prefix)
        })
    }
}

impl<O: ObjectStore> Destination for S3<O> {
    fn describe(&self) -> String {
        self.url.clone()
    }
    fn put(&self, local: &Path, remote: &str) -> Result<()> {
        self.store.put_file(local, &self.key(remote)?)
    }
    fn put_bytes(&self, bytes: &[u8], remote: &str) -> Result<()> {
        let tmp = tempfile::NamedTempFile::new().context("temp file for an upload")?;
        std::fs::write(tmp.path(), bytes)?;
        self.store.put_file(tmp.path(), &self.key(remote)?)
    }
    fn get(&self, remote: &str, local: &Path) -> Result<()> {
        self.store.get_file(&self.key(remote)?, local)
    }
    fn get_bytes(&self, remote: &str) -> Result<Vec<u8>> {
        let tmp = tempfile::NamedTempFile::new().context("temp file for a download")?;
        self.store.get_file(&self.key(remote)?, tmp.path())?;
        Ok(std::fs::read(tmp.path())?)
    }
    fn list(&self) -> Result<Vec<String>> {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut v: Vec<String> = self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .filter(|k| !k.is_empty() && !k.ends_with('/'))
            .collect();
        v.sort();
        Ok(v)
    }
    fn delete(&self, remote: &str) -> Result<()> {
        self.store.delete(&self.key(remote)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An in-memory bucket.
    #[derive(Default)]
    struct Mem(RefCell<BTreeMap<String, Vec<u8>>>);

    impl ObjectStore for Mem {
        fn put_file(&self, local: &Path, key: &str) -> Result<()> {
            self.0
                .borrow_mut()
                .insert(key.into(), std::fs::read(local)?);
            Ok(())
        }
        fn get_file(&self, key: &str, local: &Path) -> Result<()> {
            let b = self.0.borrow().get(key).cloned().context("NoSuchKey")?;
            Ok(std::fs::write(local, b)?)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>> {
            Ok(self
                .0
                .borrow()
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        }
        fn delete(&self, key: &str) -> Result<()> {
            self.0.borrow_mut().remove(key);
            Ok(())
        }
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let s3 = S3 {
            store: Mem::default(),
            url: "s3://b/oml".into(),
            prefix: "oml".into(),
        };
        s3.store.0.borrow_mut().insert("other/x".into(), vec![]);
        s3.put_bytes(b"m", "acme/x.manifest.json").unwrap();
        assert_eq!(s3.list().unwrap(), vec!["acme/x.manifest.json"]);
        assert_eq!(s3.get_bytes("acme/x.manifest.json").unwrap(), b"m");
        assert!(s3.store.0.borrow().contains_key("oml/acme/x.manifest.json"));
        s3.delete("acme/x.manifest.json").unwrap();
        assert!(s3.list().unwrap().is_empty());
        assert!(s3.put_bytes(b"", "../escape").is_err());
    }
}
