//! Layering and validation. Collects every error; never stops at the first.
use super::schema::{self, Kind, SecretPolicy, KEYS};
use super::yaml::{self, Node};
use super::{
    Config, ConfigError, ConfigErrors, ImageRef, Origin, Sources, Value, RESERVED_ENV,
    RESERVED_ENV_PREFIX,
};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// A value as typed by the operator, before it is checked against its kind.
#[derive(Debug, Clone)]
enum Raw {
    Text(String),
    List(Vec<String>),
    /// Explicitly empty: the key is unset (its default applies).
    Unset,
}

struct Entry {
    raw: Raw,
    origin: Origin,
}

#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        self.0.push(ConfigError {
            location: origin.to_string(),
            key: key.to_string(),
            message: message.into(),
        });
    }
}

fn unknown_key_message(key: &str) -> String {
    match schema::suggest(key) {
        Some(s) => format!("unknown key; did you mean `{s}`?"),
        None => "unknown key (see the config reference in README.md)".to_string(),
    }
}

/// `host_specific: false` is for `omlboot bake`: an image is baked before anyone knows the cluster's
/// addresses or passwords, so the checks that need them are left to the first boot.
pub(super) fn load(src: &Sources, host_specific: bool) -> Result<Config, ConfigErrors> {
    let mut errs = Errors::default();
    let mut entries: BTreeMap<&'static str, Entry> = BTreeMap::new();
    let mut warnings = Vec::new();

    if let Some((path, text)) = &src.file {
        read_file(path, text, &mut entries, &mut errs);
    }
    read_env(&src.env, &mut entries, &mut errs);
    read_sets(&src.sets, &mut entries, &mut errs);
    if let Some(role) = &src.role {
        entries.insert(
            "role",
            Entry {
                raw: Raw::Text(role.clone()),
                origin: Origin::RoleFlag,
            },
        );
    }

    let mut cfg = Config {
        values: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let mut ignored: Vec<(&str, Vec<&str>)> = Vec::new();
    for key in KEYS {
        match entries.get(key.name) {
            Some(Entry {
                raw: Raw::Unset, ..
            })
            | None => {
                if let Some(d) = key.default {
                    let v = parse_value(key, &Raw::Text(d.to_string())).unwrap_or_else(|e| {
                        panic!("schema default of {} is invalid: {e}", key.name)
                    });
                    if let Some(v) = v {
                        cfg.set(key.name, v, Origin::Default);
                    }
                }
            }
            Some(entry) => match parse_value(key, &entry.raw) {
                Ok(Some(v)) => cfg.set(key.name, v, entry.origin.clone()),
                Ok(None) => {}
                Err(msg) => errs.push(&entry.origin, key.name, msg),
            },
        }
        if key.kind == Kind::AnsibleOnly {
            if let Some(e) = entries.get(key.name) {
                warnings.push(format!(
                    "{}: {}: only used by Ansible; ignored",
                    e.origin, key.name
                ));
            }
        }
        if let Kind::Ignored(why) = key.kind {
            if entries.contains_key(key.name) {
                match ignored.iter_mut().find(|(w, _)| *w == why) {
                    Some((_, keys)) => keys.push(key.name),
                    None => ignored.push((why, vec![key.name])),
                }
            }
        }
    }
    // One line per reason: a pasted omldeploytool group_vars carries some thirty such keys.
    for (why, keys) in ignored {
        warnings.push(format!(
            "ignored (omldeploytool only: {why}): {}",
            keys.join(", ")
        ));
    }

    let file_origin = src
        .file
        .as_ref()
        .map_or(Origin::Default, |(p, _)| Origin::File {
            path: p.clone(),
            line: 1,
            col: 1,
        });
    cross_checks(
        &mut cfg,
        &file_origin,
        &mut errs,
        &mut warnings,
        host_specific,
    );

    if errs.0.is_empty() {
        cfg.warnings = warnings;
        Ok(cfg)
    } else {
        errs.0.sort_by_key(|a| natural_location(&a.location));
        Err(ConfigErrors(errs.0))
    }
}

/// Sort key that orders `file:2:1` before `file:10:1`.
fn natural_location(loc: &str) -> (String, usize, usize) {
    let mut parts = loc.rsplitn(3, ':');
    let col = parts.next().and_then(|c| c.parse().ok());
    let line = parts.next().and_then(|l| l.parse().ok());
    match (parts.next(), line, col) {
        (Some(file), Some(l), Some(c)) => (file.to_string(), l, c),
        _ => (loc.to_string(), 0, 0),
    }
}

fn read_file(
    path: &Path,
    text: &str,
    entries: &mut BTreeMap<&'static str, Entry>,
    errs: &mut Errors,
) {
    let at = |p: yaml::Pos| Origin::File {
        path: path.to_path_buf(),
        line: p.line,
        col: p.col,
    };
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            errs.push(&at(e.pos), "", format!("YAML syntax error: {}", e.message));
            return;
        }
    };
    let mut pairs = match root {
        Node::Map(pairs, _) => pairs,
        Node::Null(_) => return,
        other => {
            errs.push(
                &at(other.pos()),
                "",
                "the config must be a YAML mapping of key: value",
            );
            return;
        }
    };
    // An inventory's `vars:` block pasted with its header is accepted as-is.
    if pairs.len() == 1 {
        if let (Node::Scalar(k, _, _), Node::Map(inner, _)) = &pairs[0] {
            if k == "vars" {
                pairs = inner.clone();
            }
        }
    }
    let mut seen: BTreeMap<String, yaml::Pos> = BTreeMap::new();
    for (k, v) in pairs {
        let Node::Scalar(name, _, kpos) = &k else {
            errs.push(&at(k.pos()), "", "keys must be plain names");
            continue;
        };
        if let Some(first) = seen.get(name) {
            errs.push(
                &at(*kpos),
                name,
                format!("duplicate key (first set at line {})", first.line),
            );
            continue;
        }
        seen.insert(name.clone(), *kpos);
        let Some(key) = schema::lookup(name) else {
            errs.push(&at(*kpos), name, unknown_key_message(name));
            continue;
        };
        let raw = match &v {
            // An empty list key means "none", not "the default list" (e.g. no echo services).
            Node::Null(_) if key.kind == Kind::UrlList => Raw::List(Vec::new()),
            Node::Null(_) => Raw::Unset,
            Node::Scalar(s, _, _) => Raw::Text(s.clone()),
            Node::Seq(items, _) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Node::Scalar(s, _, _) => out.push(s.clone()),
                        other => {
                            errs.push(&at(other.pos()), name, "list items must be plain values")
                        }
                    }
                }
                Raw::List(out)
            }
            Node::Map(_, p) => {
                errs.push(
                    &at(*p),
                    name,
                    format!("expected {}, got a mapping", schema::allowed(key.kind)),
                );
                continue;
            }
        };
        entries.insert(
            key.name,
            Entry {
                raw,
                origin: at(v.pos()),
            },
        );
    }
}

fn read_env(
    env: &[(String, String)],
    entries: &mut BTreeMap<&'static str, Entry>,
    errs: &mut Errors,
) {
    for (var, value) in env {
        let Some(suffix) = var.strip_prefix("OMLBOOT_") else {
            continue;
        };
        if RESERVED_ENV.contains(&var.as_str()) || var.starts_with(RESERVED_ENV_PREFIX) {
            continue;
        }
        let origin = Origin::Env(var.clone());
        // Keys are matched case-insensitively because env names are upper-case while most keys are not.
        match KEYS.iter().find(|k| k.name.eq_ignore_ascii_case(suffix)) {
            Some(key) => {
                entries.insert(
                    key.name,
                    Entry {
                        raw: text_or_unset(key.kind, value),
                        origin,
                    },
                );
            }
            None => errs.push(&origin, suffix, unknown_key_message(suffix)),
        }
    }
}

fn read_sets(sets: &[String], entries: &mut BTreeMap<&'static str, Entry>, errs: &mut Errors) {
    for arg in sets {
        let origin = Origin::Set(display_set(arg));
        let Some((name, value)) = arg.split_once('=') else {
            errs.push(&origin, "", "expected key=value");
            continue;
        };
        let name = name.trim();
        match schema::lookup(name) {
            Some(key) => {
                entries.insert(
                    key.name,
                    Entry {
                        raw: text_or_unset(key.kind, value),
                        origin,
                    },
                );
            }
            None => errs.push(&origin, name, unknown_key_message(name)),
        }
    }
}

/// A `--set` argument as shown in messages: the value of a secret is hidden.
fn display_set(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _)) if schema::lookup(k.trim()).is_some_and(|s| s.kind == Kind::Secret) => {
            format!("{k}=…")
        }
        _ => arg.to_string(),
    }
}

fn text_or_unset(kind: Kind, s: &str) -> Raw {
    if s.is_empty() && kind == Kind::UrlList {
        Raw::List(Vec::new())
    } else if s.is_empty() {
        Raw::Unset
    } else {
        Raw::Text(s.to_string())
    }
}

fn one_line(s: &str) -> Result<(), String> {
    if s.contains(['\n', '\r']) {
        return Err("must be on one line (env files cannot hold line breaks)".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Check a raw value against its key's kind. `Ok(None)` means "no value" (an unsupported key left off).
fn parse_value(key: &schema::Key, raw: &Raw) -> Result<Option<Value>, String> {
    let allowed = schema::allowed(key.kind);
    if matches!(key.kind, Kind::AnsibleOnly | Kind::Ignored(_)) {
        return Ok(None);
    }
    let text = match (raw, key.kind) {
        (Raw::Unset, _) => return Ok(None),
        (Raw::List(items), Kind::UrlList) => {
            for u in items {
                check_url(u).map_err(|e| format!("{e}: {u:?}"))?;
            }
            return Ok(Some(Value::List(items.clone())));
        }
        (Raw::List(_), _) => return Err(format!("expected {allowed}, got a list")),
        (Raw::Text(t), _) => t.trim(),
    };
    let bad = || format!("expected {allowed}, got {text:?}");
    match key.kind {
        Kind::Text => {
            one_line(text)?;
            Ok(Some(Value::Text(text.to_string())))
        }
        Kind::Secret => {
            one_line(text)?;
            let min = if matches!(key.name, "s3_http_admin_pass" | "bucket_secret_key") {
                8
            } else {
                1
            };
            if text.chars().count() < min {
                return Err(format!(
                    "must be at least {min} characters (MinIO refuses shorter ones)"
                ));
            }
            Ok(Some(Value::Text(text.to_string())))
        }
        Kind::Enum(words) => {
            if let Some(w) = words.iter().find(|w| w.eq_ignore_ascii_case(text)) {
                return Ok(Some(Value::Text(w.to_string())));
            }
            let close = words
                .iter()
                .find(|w| strsim::jaro_winkler(w, &text.to_ascii_lowercase()) > 0.8);
            Err(match close {
                Some(c) => format!("{}; did you mean `{c}`?", bad()),
                None => bad(),
            })
        }
        Kind::Ipv4 => {
            let ip: Ipv4Addr = text.parse().map_err(|_| bad())?;
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
                Err(format!(
                    "{ip} cannot be a host address (unspecified, broadcast, multicast or loopback)"
                ))
            } else {
                Ok(Some(Value::Text(ip.to_string())))
            }
        }
        Kind::Host => {
            if text.parse::<Ipv4Addr>().is_ok() || is_hostname(text, 1) {
                Ok(Some(Value::Text(text.to_string())))
            } else {
                Err(bad())
            }
        }
        Kind::Port => match text.parse::<u64>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(Some(Value::Int(p))),
            _ => Err(bad()),
        },
        Kind::Int { min, max } => match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(Value::Int(n))),
            _ => Err(bad()),
        },
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(Some(Value::Bool(true))),
            "false" | "no" | "off" => Ok(Some(Value::Bool(false))),
            _ => Err(bad()),
        },
        Kind::Fqdn => {
            let last_alpha = text
                .rsplit('.')
                .next()
                .is_some_and(|l| l.chars().all(|c| c.is_ascii_alphabetic()));
            if is_hostname(text, 2) && last_alpha {
                Ok(Some(Value::Text(text.to_ascii_lowercase())))
            } else {
                Err(bad())
            }
        }
        Kind::Image => text
            .parse::<ImageRef>()
            .map(|_| Some(Value::Text(text.to_string())))
            .map_err(|e| format!("{e}; expected {allowed}, got {text:?}")),
        Kind::Url => check_url(text)
            .map(|_| Some(Value::Text(text.to_string())))
            .map_err(|e| format!("{e}; got {text:?}")),
        Kind::UrlList => {
            let items: Vec<String> = text
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty() && s != "[]")
                .collect();
            for u in &items {
                check_url(u).map_err(|e| format!("{e}: {u:?}"))?;
            }
            Ok(Some(Value::List(items)))
        }
        Kind::Path => {
            one_line(text)?;
            if text.starts_with('/') {
                Ok(Some(Value::Text(text.to_string())))
            } else {
                Err(bad())
            }
        }
        Kind::TimeZone => {
            if super::tz_names::TZ_NAMES.binary_search(&text).is_ok() {
                Ok(Some(Value::Text(text.to_string())))
            } else {
                let not_known = format!("{text:?} is not in the IANA time zone database");
                Err(match suggest_time_zone(text) {
                    Some(c) => format!("{not_known}; did you mean `{c}`?"),
                    None => format!("{not_known}; expected {allowed}"),
                })
            }
        }
        Kind::Name => {
            let ok = text.len() <= schema::NAME_MAX
                && text.starts_with(|c: char| c.is_ascii_alphanumeric())
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if ok {
                Ok(Some(Value::Text(text.to_string())))
            } else {
                Err(bad())
            }
        }
        Kind::Nic => {
            let ok = !text.is_empty()
                && text.len() <= 15
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
            if ok {
                Ok(Some(Value::Text(text.to_string())))
            } else {
                Err(bad())
            }
        }
        Kind::Size => {
            let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &text[digits.len()..];
            let unit_ok = [
                "", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", "t", "tb", "tib", "b",
            ]
            .contains(&unit.to_ascii_lowercase().as_str());
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && unit_ok {
                Ok(Some(Value::Text(text.to_string())))
            } else {
                Err(bad())
            }
        }
        Kind::Unsupported(why) => match text.to_ascii_lowercase().as_str() {
            "" | "false" | "no" | "off" => Ok(None),
            _ => Err(format!("not supported: {why}")),
        },
        Kind::AnsibleOnly | Kind::Ignored(_) => Ok(None),
    }
}

/// The closest IANA name to a refused one: the same name in another case first, then the
/// most similar name (Jaro-Winkler, as for unknown keys).
fn suggest_time_zone(text: &str) -> Option<&'static str> {
    let names = super::tz_names::TZ_NAMES;
    if let Some(n) = names.iter().find(|n| n.eq_ignore_ascii_case(text)) {
        return Some(n);
    }
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(&lower, &n.to_ascii_lowercase()), *n))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

pub(super) fn is_hostname(s: &str, min_labels: usize) -> bool {
    let labels: Vec<&str> = s.trim_end_matches('.').split('.').collect();
    s.len() <= 253
        && labels.len() >= min_labels
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn check_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split(['/', '?']).next().unwrap_or("");
    if host.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not a valid URL".into());
    }
    Ok(())
}

fn cross_checks(
    cfg: &mut Config,
    file: &Origin,
    errs: &mut Errors,
    warnings: &mut Vec<String>,
    host_specific: bool,
) {
    let origin_of =
        |cfg: &Config, key: &str| cfg.origin(key).cloned().unwrap_or_else(|| file.clone());
    let role = cfg.role();
    let role_origin = origin_of(cfg, "role");

    if role.is_cluster() && host_specific {
        for key in ["data_host", "voice_host", "application_host"] {
            if cfg.get(key).is_none() {
                errs.push(
                    &role_origin,
                    key,
                    format!(
                        "required when role is {} (every cluster host needs all three addresses)",
                        role.as_str()
                    ),
                );
            }
        }
        for key in KEYS.iter().filter(|k| k.secret == SecretPolicy::Generated) {
            let needed = match key.name {
                "s3_http_admin_pass" => cfg.get("bucket_url").is_none(),
                _ => true,
            };
            if needed && cfg.get(key.name).is_none() {
                errs.push(
                    &role_origin,
                    key.name,
                    format!(
                        "required when role is {}: every host of a cluster must use the same value",
                        role.as_str()
                    ),
                );
            }
        }
        if let Some(own_key) = role.host_key() {
            match (
                cfg.text("omni_ip_lan").map(str::to_string),
                cfg.text(own_key).map(str::to_string),
            ) {
                (Some(lan), Some(own)) if lan != own => {
                    errs.push(&origin_of(cfg, "omni_ip_lan"), "omni_ip_lan", format!("is {lan} but {own_key} (this {} host) is {own}; they must be the same address", role.as_str()));
                }
                (None, Some(own)) => {
                    cfg.set("omni_ip_lan", Value::Text(own), Origin::Derived(own_key))
                }
                _ => {}
            }
        }
    } else {
        let given: Vec<&str> = ["data_host", "voice_host", "application_host"]
            .into_iter()
            .filter(|k| cfg.get(k).is_some())
            .collect();
        if !given.is_empty() {
            warnings.push(format!(
                "role is aio: {} ignored (they only matter for data/voice/app)",
                given.join(", ")
            ));
        }
    }

    if cfg.get("postgres_host").is_some() && cfg.get("postgres_password").is_none() {
        errs.push(&origin_of(cfg, "postgres_host"), "postgres_password", "required with an external postgres_host (omlboot cannot set the password of a server it does not run)");
    }
    if let Some(url) = cfg.text("bucket_url").map(str::to_string) {
        let o = origin_of(cfg, "bucket_url");
        if url != "aws" {
            if let Err(e) = check_url(&url) {
                errs.push(
                    &o,
                    "bucket_url",
                    format!("{e}; expected `aws` or an http(s) URL, got {url:?}"),
                );
            }
        }
        if cfg.get("bucket_secret_key").is_none() {
            errs.push(
                &o,
                "bucket_secret_key",
                "required with an external bucket_url",
            );
        }
        if !cfg.is_given("bucket_access_key") {
            errs.push(
                &o,
                "bucket_access_key",
                "required with an external bucket_url",
            );
        }
    }
    if cfg.text("certs") == Some("custom") {
        for key in ["cert_file_name", "key_file_name"] {
            if cfg.get(key).is_none() {
                errs.push(
                    &origin_of(cfg, "certs"),
                    key,
                    "required when certs is custom",
                );
            }
        }
    }
    if cfg.get("email_backend").is_some() && cfg.get("email_host").is_none() {
        errs.push(
            &origin_of(cfg, "email_backend"),
            "email_host",
            "required when email_backend is set",
        );
    }
    // The maintenance window of voice restarts (upgrade): weekdays and UTC hours that parse.
    if let Err(e) = crate::apply::drain::Window::parse(
        cfg.text("maintenance_weekdays"),
        cfg.text("maintenance_hours"),
    ) {
        let key = if e.starts_with("maintenance_hours") {
            "maintenance_hours"
        } else {
            "maintenance_weekdays"
        };
        let msg = e.split_once(": ").map(|(_, m)| m).unwrap_or(&e).to_string();
        errs.push(&origin_of(cfg, key), key, msg);
    }
    if matches!(cfg.text("infra_env"), Some("nat")) && cfg.get("nat_ip_addr").is_none() {
        // Not an error: the NAT address is discovered. Said here so the operator knows a network call follows.
        warnings.push(
            "infra_env is nat and nat_ip_addr is unset: the public address will be discovered"
                .into(),
        );
    }
    for (key, msg) in crate::backup::config::check(cfg) {
        errs.push(&origin_of(cfg, key), key, msg);
    }
    // Two components sharing a port: catalog::ports::check, which knows the components' ports.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_location_orders_lines_numerically() {
        assert!(natural_location("f.yaml:2:1") < natural_location("f.yaml:10:1"));
    }

    #[test]
    fn the_test_suites_variables_are_not_config_keys() {
        let env = |var: &str| vec![(var.to_string(), "/work/e2e-cache".to_string())];
        for var in ["OMLBOOT_E2E_CACHE", "OMLBOOT_BIN", "OMLBOOT_LOG"] {
            let (mut entries, mut errs) = (BTreeMap::new(), Errors::default());
            read_env(&env(var), &mut entries, &mut errs);
            assert!(entries.is_empty() && errs.0.is_empty(), "{var}");
        }
        let (mut entries, mut errs) = (BTreeMap::new(), Errors::default());
        read_env(&env("OMLBOOT_E2ECACHE"), &mut entries, &mut errs);
        assert_eq!(errs.0.len(), 1, "a misspelt key is still an error");
    }
}
