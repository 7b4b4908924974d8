//! The aio config the engine tests on fakes share, and its plan built as `omlboot plan` builds it
//! (config only: every address is fixed, no host is read).
#![allow(dead_code)]
use omlboot::catalog::Units;
use omlboot::config::{Config, Sources};
use omlboot::facts::Facts;
use omlboot::plan::Plan;

/// An aio host with its passwords and address given.
pub const AIO: &str = "\
role: aio
omni_ip_lan: 10.20.0.10
infra_env: lan
postgres_password: Postgres-Pass-1
ami_password: Ami-Pass-1
s3_http_admin_pass: Minio-Root-1
bucket_secret_key: Bucket-Secret-1
public_ip_echo_urls: []
";

pub fn plan_with(units: &Units, config: &str) -> Plan {
    let mut cfg = Config::load(&Sources {
        file: Some(("config.yaml".into(), config.to_string())),
        ..Default::default()
    })
    .expect("valid config");
    let facts = Facts::from_config_only(&cfg).expect("config fixes every address");
    omlboot::plan::build(&mut cfg, &facts, units, &Default::default()).expect("plan")
}

/// The plan of `config` with the shipped catalog.
pub fn plan_of(config: &str) -> Plan {
    plan_with(&Units::embedded().unwrap(), config)
}
