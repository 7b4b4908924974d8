//! Which address each service is reached at, per layout: omldeploytool's `set_fact` table
//! (roles/prerequisitos/tasks/checks.yml), as one pure function of config and facts.
use crate::config::{schema::KEYS, Config, ImageRef, Role, Settings, Value};
use crate::facts::Facts;
use anyhow::{anyhow, bail, Result};
use serde_json::json;

pub const CERTS_LOCATION: &str = "/etc/omnileads/certs";

/// Service addresses for this host's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub postgres_host: String,
    pub minio_host: String,
    pub websockets_host: String,
    pub kamailio_host: String,
    pub redis_host: String,
    pub dialer_host: String,
    pub prometheus_host: String,
    pub asterisk_host: String,
    pub rtpengine_host: String,
    pub fastagi_host: String,
    pub nginx_host: String,
    pub rabbitmq_host: String,
}

pub fn addresses(s: &Settings, omni_ip_lan: &str) -> Addresses {
    let cluster = s.role != "aio";
    let host = |v: &Option<String>| v.clone().unwrap_or_default();
    let (data, voice, app) = (
        host(&s.data_host),
        host(&s.voice_host),
        host(&s.application_host),
    );
    let pick = |aio: &str, cluster_value: &str| {
        if cluster {
            cluster_value.to_string()
        } else {
            aio.to_string()
        }
    };
    Addresses {
        postgres_host: s
            .postgres_host
            .clone()
            .unwrap_or_else(|| pick("localhost", &data)),
        minio_host: pick("http://localhost:9000", &format!("http://{data}:9000")),
        websockets_host: "localhost".into(),
        kamailio_host: pick("localhost", &app),
        redis_host: pick("localhost", &data),
        dialer_host: s.dialer_host.clone(),
        prometheus_host: pick("localhost", &app),
        asterisk_host: pick(omni_ip_lan, &voice),
        rtpengine_host: s
            .rtpengine_host
            .clone()
            .unwrap_or_else(|| pick(omni_ip_lan, &voice)),
        fastagi_host: pick(omni_ip_lan, &app),
        nginx_host: pick(omni_ip_lan, &app),
        rabbitmq_host: pick("127.0.0.1", &data),
    }
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
pub fn context(cfg: &Config, facts: &Facts) -> Result<tera::Context> {
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
    let a = addresses(&s, &lan);
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
        "postgres_host": a.postgres_host,
        "postgres_out": s.postgres_host.is_some(),
        "minio_host": a.minio_host,
        "bucket_out": s.bucket_url.is_some(),
        "rtpengine_host": a.rtpengine_host,
        "rtpengine_out": s.rtpengine_host.is_some(),
        "websockets_host": a.websockets_host,
        "kamailio_host": a.kamailio_host,
        "redis_host": a.redis_host,
        "dialer_host": a.dialer_host,
        "prometheus_host": a.prometheus_host,
        "asterisk_host": a.asterisk_host,
        "fastagi_host": a.fastagi_host,
        "nginx_host": a.nginx_host,
        "rabbitmq_host": a.rabbitmq_host,
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
    Ok(ctx)
}
