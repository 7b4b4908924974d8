//! S3 and MinIO admin from Rust, so first boot needs no `mc` download: the MinIO bootstrap
//! (bucket, application user, readwrite policy) here, and object transfers for backups.
//!
//! - [`sigv4`]: AWS Signature Version 4 with S3's rules;
//! - [`client`]: bucket and object calls over reqwest (rustls), multipart for large files;
//! - [`admin`]: MinIO's admin API (user-info, add-user, policy attach);
//! - [`crypto`]: madmin's encrypted body format (argon2id + DARE 2.0).
pub mod admin;
pub mod client;
pub mod crypto;
pub mod error;
mod multipart;
pub mod sigv4;

pub use admin::{Admin, UserInfo};
pub use client::{Change, Client, ClientConfig, ObjectInfo, ObjectMeta};
pub use error::S3Error;
pub use multipart::part_size;

/// The canned MinIO policy omldeploytool gives the application user.
pub const APP_POLICY: &str = "readwrite";

/// What [`bootstrap`] changed, item by item, for the run's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BootstrapOutcome {
    pub bucket: Change,
    /// `Updated` when the user existed but was disabled or had another secret key.
    pub user: Change,
    pub policy: Change,
}

impl BootstrapOutcome {
    pub fn changed(&self) -> bool {
        [self.bucket, self.user, self.policy]
            .iter()
            .any(|c| *c != Change::AlreadyPresent)
    }
}

impl std::fmt::Display for BootstrapOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bucket {}, user {}, policy {APP_POLICY} {}",
            self.bucket, self.user, self.policy
        )
    }
}

/// Makes MinIO hold `bucket`, an enabled user `app_access_key` / `app_secret_key` and the
/// `readwrite` policy on it. `root` is the MinIO endpoint with the root credentials. Idempotent:
/// on a converged server it only reads, and says so in the outcome.
pub async fn bootstrap(
    root: ClientConfig,
    bucket: &str,
    app_access_key: &str,
    app_secret_key: &str,
) -> Result<BootstrapOutcome, S3Error> {
    if app_access_key == root.access_key {
        return Err(S3Error::Invalid(
            "the application access key must differ from the MinIO root user".into(),
        ));
    }
    let mut app = root.clone();
    app.access_key = app_access_key.to_string();
    app.secret_key = crate::config::Secret::new(app_secret_key);
    let app = Client::new(app)?;
    let s3 = Client::new(root.clone())?;
    let admin = Admin::new(root)?;

    let bucket_change = s3.create_bucket(bucket).await?;
    let existing = admin.user_info(app_access_key).await?;
    let mut user = match &existing {
        None => {
            admin.add_user(app_access_key, app_secret_key).await?;
            Change::Created
        }
        Some(info) if info.status != "enabled" => {
            admin.add_user(app_access_key, app_secret_key).await?;
            Change::Updated
        }
        Some(_) => Change::AlreadyPresent,
    };
    let policy = match &existing {
        Some(info) if info.has_policy(APP_POLICY) => Change::AlreadyPresent,
        _ => admin.attach_policy(app_access_key, APP_POLICY).await?,
    };
    // user-info never shows the secret: an existing user proves its key by using it.
    if user == Change::AlreadyPresent {
        match app.check_access(bucket).await {
            Ok(()) => {}
            Err(e) if e.is_bad_credentials() => {
                admin.add_user(app_access_key, app_secret_key).await?;
                user = Change::Updated;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(BootstrapOutcome {
        bucket: bucket_change,
        user,
        policy,
    })
}
