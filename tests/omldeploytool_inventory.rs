//! issue 10, defect 6: omldeploytool 2.2.2's own example inventory is accepted. Every example
//! host's variables (inventory `all.vars`, then group_vars/all, then its group's vars, then its
//! own, as Ansible layers them) go through `omlboot validate`: every key is used, ignored with a
//! warning, or refused only when it asks for a feature omlboot does not provide, saying so.
mod common;
use common::*;
use serde_yaml_ng::{Mapping, Value};

const DIR: &str = "tests/fixtures/omldeploytool-2.2.2";

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(repo(&format!("{DIR}/{name}"))).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn merge(into: &mut Mapping, from: Option<&Value>) {
    if let Some(Value::Mapping(m)) = from {
        for (k, v) in m {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// (host name, role, merged variables) for every example host of the inventory.
fn hosts() -> Vec<(String, &'static str, Mapping)> {
    let inv = load("inventory.yml");
    let all = &inv["all"];
    let mut base = Mapping::new();
    merge(&mut base, Some(&all["vars"]));
    merge(&mut base, Some(&load("group_vars-all.yml")));
    let mut out = Vec::new();
    // Groups holding hosts, with the vars of the group that holds them.
    fn walk(node: &Value, group_vars: &Mapping, out: &mut Vec<(String, Mapping)>) {
        let mut vars = group_vars.clone();
        merge(&mut vars, node.get("vars"));
        if let Some(Value::Mapping(hosts)) = node.get("hosts") {
            for (name, own) in hosts {
                let mut v = vars.clone();
                merge(&mut v, Some(own));
                out.push((name.as_str().unwrap().to_string(), v));
            }
        }
        if let Some(Value::Mapping(children)) = node.get("children") {
            for (_, child) in children {
                walk(child, &vars, out);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Value::Mapping(all.as_mapping().unwrap().clone()),
        &Mapping::new(),
        &mut found,
    );
    for (name, own) in found {
        let mut vars = base.clone();
        for (k, v) in own {
            if k.as_str() != Some("vars") {
                vars.insert(k, v);
            }
        }
        let role = ["data", "voice", "app"]
            .into_iter()
            .find(|r| name.ends_with(&format!("_{r}")))
            .unwrap_or("aio");
        out.push((name, role, vars));
    }
    out
}

#[test]
fn every_example_host_validates_or_names_the_unprovided_feature() {
    let hosts = hosts();
    assert_eq!(
        hosts.len(),
        13,
        "{:?}",
        hosts.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, role, vars) in &hosts {
        let cfg = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(&cfg, serde_yaml_ng::to_string(vars).unwrap()).unwrap();
        let o = omlboot(&[
            "validate",
            "--config",
            cfg.to_str().unwrap(),
            "--role",
            role,
        ]);
        let err = stderr(&o);
        if err.contains("unknown key") {
            failures.push(format!("{name}: an unknown key:\n{err}"));
            continue;
        }
        // The hosts that ask for a feature omlboot lacks: refused, naming the key and why.
        let refused: &[&str] = match name.as_str() {
            "tenant_example_4" => &["qa_env"],
            n if n.starts_with("tenant_example_7") => &["omnileads_ha", "ha_role", "omnileads_vip"],
            _ => &[],
        };
        if refused.is_empty() {
            if !o.status.success() {
                failures.push(format!(
                    "{name} ({role}): exit {:?}:\n{err}",
                    o.status.code()
                ));
            } else if !err.contains("ignored (omldeploytool only")
                || !err.contains("notification_email")
            {
                failures.push(format!("{name}: no warning for the ignored keys:\n{err}"));
            }
        } else {
            let named = refused
                .iter()
                .all(|k| err.contains(&format!("{k}: not supported")));
            if o.status.code() != Some(2) || !named {
                failures.push(format!(
                    "{name}: want exit 2 naming {refused:?}; got {:?}:\n{err}",
                    o.status.code()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The `vars:` block pasted as the README invites, with its header, is read as the whole file.
#[test]
fn pasted_all_vars_block_validates() {
    let inv = load("inventory.yml");
    let mut doc = Mapping::new();
    doc.insert("vars".into(), inv["all"]["vars"].clone());
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yaml");
    std::fs::write(&cfg, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    let o = omlboot(&["validate", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}
