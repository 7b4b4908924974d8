//! Config loading + validation + port check + plan, from arbitrary YAML text.
//! Any input may be refused (that is an `Err`); none may panic, hang or crash.
#![no_main]
use libfuzzer_sys::fuzz_target;
use omlboot::catalog::{ports, Units};
use omlboot::config::{Config, Sources};
use omlboot::facts::Facts;
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn units() -> &'static Units {
    static U: OnceLock<Units> = OnceLock::new();
    U.get_or_init(|| Units::embedded().expect("embedded units"))
}

/// Facts for a config that does not fix every address itself (fixed, so the plan stays pure).
fn fallback_facts() -> &'static Facts {
    static F: OnceLock<Facts> = OnceLock::new();
    F.get_or_init(|| {
        let src = Sources {
            file: None,
            env: Vec::new(),
            sets: vec!["omni_ip_lan=10.0.0.5".into(), "infra_env=lan".into()],
            role: None,
        };
        let cfg = Config::load(&src).expect("fallback config");
        Facts::from_config_only(&cfg).expect("fallback facts")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let src = Sources {
        file: Some(("fuzz.yaml".into(), text.to_string())),
        env: Vec::new(),
        sets: Vec::new(),
        role: None,
    };
    let Ok(mut cfg) = Config::load(&src) else {
        return;
    };
    // Also exercise the redacted listing `validate` prints.
    let _ = cfg.redacted();
    if ports::check(&cfg, units()).is_err() {
        return;
    }
    let facts = Facts::from_config_only(&cfg).unwrap_or_else(|| fallback_facts().clone());
    if let Ok(plan) = omlboot::plan::build(&mut cfg, &facts, units(), &BTreeMap::new()) {
        let _ = plan.table();
        let _ = serde_json::to_string(&plan);
    }
});
