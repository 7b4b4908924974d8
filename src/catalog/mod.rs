//! The components omlboot runs, as data (units/catalog.yaml), and the templates that render them.
pub mod ports;
pub mod wiring;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_units.rs"));
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraFile {
    pub template: String,
    pub path: String,
    pub mode: String,
    /// Tera expression; the file is only written when it is true.
    #[serde(default)]
    pub when: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub unit: String,
    pub template: String,
    pub container: String,
    /// Config key holding the image reference.
    pub image: String,
    /// The reference when `image` is not a config key (a component added in a copy of units/).
    #[serde(default)]
    pub image_default: Option<String>,
    /// The call center works without it: its failure makes the host degraded, not failed.
    #[serde(default)]
    pub optional: bool,
    /// It serves the TLS pair: a new certificate restarts it; the TLS step exists only for such hosts.
    #[serde(default)]
    pub tls: bool,
    pub hosts: Vec<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub files: Vec<ExtraFile>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub wants: Vec<String>,
    /// What it listens on, `PORT/PROTO`, `LOW-HIGH/PROTO` or `<port key>/PROTO` (see [`ports`]).
    #[serde(default)]
    pub ports: Vec<String>,
    /// It writes to the database: restore stops it first and starts it after.
    #[serde(default)]
    pub writes_db: bool,
    /// Podman volumes whose content `omlboot backup` puts into the archive (restore puts it back).
    #[serde(default)]
    pub backup_volumes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostUnit {
    pub unit: String,
    pub when: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub path: String,
    pub mode: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub components: Vec<Component>,
    #[serde(default)]
    pub host_units: Vec<HostUnit>,
    #[serde(default)]
    pub host_files: Vec<ExtraFile>,
    #[serde(default)]
    pub directories: Vec<Directory>,
    /// family → ("all" | role) → package names
    #[serde(default)]
    pub packages: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// The catalog plus every template, from the binary or from `--units DIR`.
pub struct Units {
    pub catalog: Catalog,
    pub tera: tera::Tera,
}

/// Parse an octal mode string such as "0644".
pub fn parse_mode(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8).with_context(|| format!("invalid file mode {s:?}"))
}

impl Units {
    pub fn embedded() -> Result<Units> {
        Self::from_files(
            embedded::UNITS
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect(),
        )
    }

    /// Load an operator's copy of units/ (same layout as the repository's).
    pub fn from_dir(dir: &Path) -> Result<Units> {
        let mut files = Vec::new();
        fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
            for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
                let p = e?.path();
                if p.is_dir() {
                    walk(&p, base, out)?;
                } else {
                    let rel = p.strip_prefix(base)?.to_string_lossy().into_owned();
                    out.push((
                        rel,
                        std::fs::read_to_string(&p)
                            .with_context(|| format!("reading {}", p.display()))?,
                    ));
                }
            }
            Ok(())
        }
        walk(dir, dir, &mut files)?;
        Self::from_files(files)
    }

    fn from_files(files: Vec<(String, String)>) -> Result<Units> {
        let catalog_text = files
            .iter()
            .find(|(p, _)| p == "catalog.yaml")
            .map(|(_, c)| c.as_str())
            .context("units/catalog.yaml is missing")?;
        let catalog: Catalog =
            serde_yaml_ng::from_str(catalog_text).context("parsing units/catalog.yaml")?;
        let mut tera = tera::Tera::default();
        // Templates are addressed by file name: services/x.tera → "x.tera", env/django.env.tera → "django.env.tera".
        let templates: Vec<(String, String)> = files
            .iter()
            .filter(|(p, _)| p.ends_with(".tera"))
            .map(|(p, c)| (p.rsplit('/').next().unwrap_or(p).to_string(), c.clone()))
            .collect();
        tera.add_raw_templates(templates)
            .map_err(|e| anyhow::anyhow!("{}", tera_error(&e)))?;
        tera.autoescape_on(vec![]);
        // tera's builtin filters need chrono and friends; omlboot only needs this one.
        tera.register_filter("urlencode_strict", urlencode_strict);
        let units = Units { catalog, tera };
        units.check()?;
        Ok(units)
    }

    /// Every template the catalog names exists and every mode parses, so a broken `--units` copy fails up front.
    fn check(&self) -> Result<()> {
        let names: Vec<&str> = self.tera.get_template_names().collect();
        let has = |t: &str| names.contains(&t);
        for c in &self.catalog.components {
            if !has(&c.template) {
                bail!(
                    "units/catalog.yaml: component {}: template {} not found",
                    c.name,
                    c.template
                );
            }
            if let Some(env) = &c.env {
                if !has(&format!("{env}.tera")) {
                    bail!(
                        "units/catalog.yaml: component {}: env template {env}.tera not found",
                        c.name
                    );
                }
            }
            match (crate::config::schema::lookup(&c.image), &c.image_default) {
                (Some(k), _) if k.kind != crate::config::schema::Kind::Image => bail!(
                    "units/catalog.yaml: component {}: {} is not an image key of the config",
                    c.name,
                    c.image
                ),
                (None, None) => bail!(
                    "units/catalog.yaml: component {}: image key {} is not a config key; give image_default",
                    c.name,
                    c.image
                ),
                (None, Some(r)) => crate::config::check_image_reference(r).map_err(|e| {
                    anyhow::anyhow!(
                        "units/catalog.yaml: component {}: image_default {r:?}: {e}",
                        c.name
                    )
                })?,
                (Some(_), _) => {}
            }
            for p in &c.ports {
                ports::PortSpec::parse(p).map_err(|e| {
                    anyhow::anyhow!("units/catalog.yaml: component {}: ports: {e}", c.name)
                })?;
            }
            for f in &c.files {
                if !has(&f.template) {
                    bail!(
                        "units/catalog.yaml: component {}: template {} not found",
                        c.name,
                        f.template
                    );
                }
                parse_mode(&f.mode)?;
            }
        }
        for f in &self.catalog.host_files {
            if !has(&f.template) {
                bail!(
                    "units/catalog.yaml: host file template {} not found",
                    f.template
                );
            }
            parse_mode(&f.mode)?;
        }
        for d in &self.catalog.directories {
            parse_mode(&d.mode)?;
        }
        Ok(())
    }

    pub fn render(&self, template: &str, ctx: &tera::Context) -> Result<String> {
        self.tera
            .render(template, ctx)
            .map_err(|e| anyhow::anyhow!("rendering {template}: {}", tera_error(&e)))
    }

    /// Evaluate a catalog `when:` expression against the context.
    pub fn condition(&self, expr: &str, ctx: &tera::Context) -> Result<bool> {
        let out = tera::Tera::one_off(&format!("{{% if {expr} %}}1{{% endif %}}"), ctx, false)
            .map_err(|e| anyhow::anyhow!("evaluating `{expr}`: {}", tera_error(&e)))?;
        Ok(out == "1")
    }
}

/// Percent-encode everything but ASCII letters and digits (for passwords inside URLs).
fn urlencode_strict(
    v: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let s = match v {
        tera::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(tera::Value::String(out))
}

/// Tera hides the useful part of an error in its source chain.
fn tera_error(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Paths of every embedded file, for tests that keep the repository and the binary in step.
pub fn embedded_paths() -> Vec<&'static str> {
    embedded::UNITS.iter().map(|(p, _)| *p).collect()
}
