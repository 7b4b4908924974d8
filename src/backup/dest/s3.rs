//! S3 as a [`Destination`], over the small [`ObjectStore`] adapter the S3 client (src/s3/, another
//! branch) implements: put_object of the final key is atomic in S3 (an interrupted upload, multipart
//! or not, leaves no object), and the manifest is put last, so a half-done backup is never listed.
use super::{check_name, Destination, ObjectStore};
use anyhow::{Context as _, Result};
use std::path::Path;

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
