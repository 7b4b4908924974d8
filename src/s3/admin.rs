//! The few MinIO admin API calls a bootstrap needs (madmin-go is the reference). They are
//! SigV4-signed like S3 (service `s3`) with the root credentials; bodies that carry a secret are
//! encrypted with the root secret key ([`super::crypto`]).
use super::client::{Call, Change, Client, ClientConfig};
use super::crypto;
use super::error::S3Error;
use reqwest::Method;
use serde::Deserialize;

const PREFIX: &str = "/minio/admin/v3";

/// Error codes that mean "this server does not know the call", as opposed to "the call failed".
const UNKNOWN_API: &[&str] = &[
    "XMinioUnknownAPIRequest",
    "XMinioAdminVersionMismatch",
    "NotImplemented",
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub status: String,
    /// Comma-separated policy names, as MinIO reports them.
    #[serde(rename = "policyName", default)]
    pub policy_name: String,
}

impl UserInfo {
    pub fn has_policy(&self, policy: &str) -> bool {
        self.policy_name.split(',').any(|p| p.trim() == policy)
    }
}

#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// `cfg` holds the MinIO endpoint and the root credentials.
    pub fn new(cfg: ClientConfig) -> Result<Admin, S3Error> {
        Ok(Admin {
            client: Client::new(cfg)?,
        })
    }

    fn root_secret(&self) -> &str {
        self.client.config().secret_key.expose()
    }

    fn call(op: &'static str, target: &str, method: Method, command: &str) -> Call {
        Call::new(op, target, method, format!("{PREFIX}/{command}"))
    }

    fn encrypt(
        &self,
        op: &'static str,
        target: &str,
        json: &serde_json::Value,
    ) -> Result<Vec<u8>, S3Error> {
        crypto::encrypt(self.root_secret(), json.to_string().as_bytes()).map_err(|source| {
            S3Error::Crypto {
                op,
                target: target.to_string(),
                source,
            }
        })
    }

    /// `None` when MinIO has no such user.
    pub async fn user_info(&self, access_key: &str) -> Result<Option<UserInfo>, S3Error> {
        let call = Self::call("user info", access_key, Method::GET, "user-info")
            .query("accessKey", access_key);
        let resp = self.client.send(&call).await?;
        if !resp.status().is_success() {
            let e = self.client.service_error(&call, resp).await;
            return match e.code() {
                Some("XMinioAdminNoSuchUser") => Ok(None),
                _ => Err(e),
            };
        }
        let body = self.client.body(&call, resp).await?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| S3Error::Protocol {
                op: call.op,
                target: call.target,
                detail: format!("user info: {e}"),
            })
    }

    /// Creates the user, or sets its secret key and enables it when it exists.
    pub async fn add_user(&self, access_key: &str, secret_key: &str) -> Result<(), S3Error> {
        let op = "add user";
        let body = self.encrypt(
            op,
            access_key,
            &serde_json::json!({"secretKey": secret_key, "status": "enabled"}),
        )?;
        let call = Self::call(op, access_key, Method::PUT, "add-user")
            .query("accessKey", access_key)
            .body(body);
        self.client.send_ok(&call).await.map(drop)
    }

    /// Attaches a canned policy to a user. Uses `idp/builtin/policy/attach` and falls back to
    /// `set-user-or-group-policy` on servers older than that call (which replaces the user's
    /// policy instead of adding to it; a fresh application user has none).
    pub async fn attach_policy(&self, user: &str, policy: &str) -> Result<Change, S3Error> {
        let op = "attach policy";
        let target = format!("{policy} to {user}");
        let body = self.encrypt(
            op,
            &target,
            &serde_json::json!({"policies": [policy], "user": user}),
        )?;
        let call = Self::call(op, &target, Method::POST, "idp/builtin/policy/attach").body(body);
        let resp = self.client.send(&call).await?;
        if resp.status().is_success() {
            return Ok(Change::Created);
        }
        let e = self.client.service_error(&call, resp).await;
        let code = e.code().unwrap_or_default();
        if code == "XMinioAdminPolicyChangeAlreadyApplied" {
            return Ok(Change::AlreadyPresent);
        }
        let unknown = UNKNOWN_API.contains(&code)
            || (matches!(e.status(), Some(404 | 405 | 501))
                && !code.starts_with("XMinioAdminNoSuch"));
        if !unknown {
            return Err(e);
        }
        tracing::debug!("{e}; falling back to set-user-or-group-policy");
        let call = Self::call(op, &target, Method::PUT, "set-user-or-group-policy")
            .query("policyName", policy)
            .query("userOrGroup", user)
            .query("isGroup", "false");
        self.client.send_ok(&call).await.map(|_| Change::Created)
    }
}
