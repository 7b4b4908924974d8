//! Which address each service is reached at, per layout: omldeploytool's `set_fact` table
//! (roles/prerequisitos/tasks/checks.yml), as one pure function of config and facts.
use crate::config::{schema::KEYS, Config, ImageRef, Role, Value};
use crate::facts::Facts;
use anyhow::{anyhow, bail, Context as _, Result};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

pub const CERTS_LOCATION: &str = "/etc/omnileads/certs";

/// Where one service is reached: a template per layout, and the config key that wins when set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub aio: String,
    pub cluster: String,
    #[serde(default, rename = "override")]
    pub override_key: Option<String>,
}

/// Every service's address for this host's layout, from the catalog's `addresses:` table.
pub fn addresses(
    table: &BTreeMap<String, Address>,
    cfg: &Config,
    omni_ip_lan: &str,
) -> Result<BTreeMap<String, String>> {
    let mut ctx = config_context(cfg);
    ctx.insert("omni_ip_lan", omni_ip_lan);
    let cluster = cfg.role() != Role::Aio;
    let mut out = BTreeMap::new();
    for (name, a) in table {
        let set = a
            .override_key
            .as_deref()
            .and_then(|k| cfg.get(k))
            .filter(|v| **v != Value::Text(String::new()));
        let value = match set {
            Some(v) => match v {
                Value::Text(t) => t.clone(),
                other => bail!("catalog addresses.{name}: override key holds {other:?}, not text"),
            },
            None => {
                let template = if cluster { &a.cluster } else { &a.aio };
                tera::Tera::one_off(template, &ctx, false)
                    .with_context(|| format!("catalog addresses.{name}"))?
            }
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Text(s) => json!(s),
        Value::List(l) => json!(l),
    }
}

/// What catalog `when:` conditions read: every config key by its inventory name (unset optional
/// keys are "") and the flags that follow from the config alone. Validation evaluates conditions on
/// it before any fact is known.
pub fn config_context(cfg: &Config) -> tera::Context {
    let s = cfg.settings();
    let mut ctx = tera::Context::new();
    for key in KEYS {
        ctx.insert(
            key.name,
            &cfg.get(key.name).map(to_json).unwrap_or(json!("")),
        );
    }
    let role = cfg.role();
    ctx.insert("role", role.as_str());
    ctx.insert("layout", if role == Role::Aio { "aio" } else { "cluster" });
    ctx.insert("postgres_out", &s.postgres_host.is_some());
    ctx.insert("bucket_out", &s.bucket_url.is_some());
    ctx.insert("rtpengine_out", &s.rtpengine_host.is_some());
    ctx
}

/// The template context: every config key by its inventory name (unset optional keys are ""), then the
/// resolved addresses and flags, which win over config keys of the same name.
pub fn context(
    cfg: &Config,
    facts: &Facts,
    table: &BTreeMap<String, Address>,
) -> Result<tera::Context> {
    let Some(lan) = facts.private_ip else {
        bail!("cannot determine this host's private IP (omni_ip_lan): set omni_ip_lan or omni_nic in the config");
    };
    let lan = lan.to_string();
    let s = cfg.settings();
    let wan = facts
        .public_ip
        .map(|ip| ip.to_string())
        .or_else(|| s.nat_ip_addr.clone())
        .unwrap_or_else(|| lan.clone());
    let role = cfg.role();
    let mut ctx = config_context(cfg);
    let addresses = addresses(table, cfg, &lan)?;
    let s3_endpoint_public = if let Some(fqdn) = &s.fqdn {
        format!("https://{fqdn}")
    } else if facts.infra_env == "cloud" {
        format!("https://{wan}")
    } else {
        format!("https://{lan}")
    };
    let derived = json!({
        "role": role.as_str(),
        "layout": if role == Role::Aio { "aio" } else { "cluster" },
        "infra_env": facts.infra_env,
        "omni_ip_lan": lan,
        "omni_ip_wan": wan,
        "nat_ip_addr": s.nat_ip_addr.clone().unwrap_or_default(),
        "postgres_out": s.postgres_host.is_some(),
        "bucket_out": s.bucket_url.is_some(),
        "rtpengine_out": s.rtpengine_host.is_some(),
        "certs_location": CERTS_LOCATION,
        "django_deploy_path": "/opt/omnileads/",
        "omnileads_release": s
            .omnileads_img
            .parse::<ImageRef>()
            .map_err(|e| anyhow!("omnileads_img: {e}"))?
            .version(),
        "oml_commit": "",
        "oml_build_date": "",
        "s3_endpoint_public": s3_endpoint_public,
    });
    if let serde_json::Value::Object(map) = derived {
        for (k, v) in map {
            ctx.insert(k, &v);
        }
    }
    for (k, v) in addresses {
        ctx.insert(k, &v);
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;

    fn addresses_for(sets: &[&str], role: &str) -> BTreeMap<String, String> {
        let file = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/config/cluster.yaml"
        ))
        .unwrap();
        let src = Sources {
            file: Some(("cluster.yaml".into(), file)),
            env: vec![],
            sets: sets.iter().map(|s| s.to_string()).collect(),
            role: Some(role.into()),
        };
        let cfg = Config::load_for_bake(&src).unwrap();
        let units = crate::catalog::Units::embedded().unwrap();
        addresses(&units.catalog.addresses, &cfg, "10.20.0.99").unwrap()
    }

    #[test]
    fn omldeploytools_table_per_layout_and_the_operators_overrides() {
        let voice = addresses_for(&[], "voice");
        assert_eq!(voice["postgres_host"], "10.20.0.11");
        assert_eq!(voice["minio_host"], "http://10.20.0.11:9000");
        assert_eq!(voice["asterisk_host"], "10.20.0.12");
        assert_eq!(voice["nginx_host"], "10.20.0.13");
        assert_eq!(voice["rabbitmq_host"], "10.20.0.11");
        assert_eq!(voice["websockets_host"], "localhost");
        let aio = addresses_for(&[], "aio");
        assert_eq!(aio["postgres_host"], "localhost");
        assert_eq!(aio["minio_host"], "http://localhost:9000");
        assert_eq!(aio["asterisk_host"], "10.20.0.99");
        assert_eq!(aio["rabbitmq_host"], "127.0.0.1");
        let external = addresses_for(
            &["postgres_host=10.9.9.9", "rtpengine_host=10.9.9.8"],
            "app",
        );
        assert_eq!(external["postgres_host"], "10.9.9.9");
        assert_eq!(external["rtpengine_host"], "10.9.9.8");
        assert_eq!(external["redis_host"], "10.20.0.11");
    }
}
