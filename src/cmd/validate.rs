//! `omlboot validate`: the resolved config, every key with its origin, secrets redacted.
use super::{Inputs, Report};
use crate::error::Result;
use std::collections::BTreeMap;

pub struct Validated {
    /// key → (shown value, origin); secrets are `<redacted>`.
    pub values: BTreeMap<&'static str, (String, String)>,
    pub warnings: Vec<String>,
}

pub fn validate(inputs: &Inputs) -> Result<Validated> {
    let cfg = inputs.config()?;
    Ok(Validated {
        values: cfg.redacted(),
        warnings: cfg.warnings.clone(),
    })
}

impl Report for Validated {
    fn table(&self) -> String {
        let w = self.values.keys().map(|k| k.len()).max().unwrap_or(0);
        self.values
            .iter()
            .map(|(k, (v, o))| format!("{k:<w$}  {v}  ({o})\n"))
            .collect()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "valid": true, "values": self.values, "warnings": self.warnings })
    }
    fn notes(&self, json: bool) -> Vec<String> {
        if json {
            return Vec::new(); // the JSON carries them
        }
        self.warnings
            .iter()
            .map(|w| format!("warning: {w}"))
            .collect()
    }
}
