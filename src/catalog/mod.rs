//! The components omlboot runs, as data (units/catalog.yaml), and the templates that render them.
pub mod ports;
pub mod tasks;
pub mod wiring;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// units/ in the binary, so it is self-contained (`--units DIR` still overrides). Every file is
/// an `include_bytes!`, so editing one rebuilds the crate; a new file is picked up with the next
/// rebuild, which the catalog.yaml change that names it causes.
static EMBEDDED: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/units");

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
    /// How omlboot tells that it works once its unit is active (see [`tasks::ProbeSpec`]).
    #[serde(default)]
    pub probe: Option<tasks::ProbeSpec>,
    /// How many calls it carries (voice components): a restart waits for them to end.
    #[serde(default)]
    pub calls: Option<CallsSpec>,
    /// Dump the database before its image changes, and restore the dump when it is rolled back
    /// (omlapp: Django migrations only go forward).
    #[serde(default)]
    pub dump_before_upgrade: bool,
    /// It writes to the database: restore stops it first and starts it after.
    #[serde(default)]
    pub writes_db: bool,
    /// Podman volumes whose content `omlboot backup` puts into the archive (restore puts it back).
    #[serde(default)]
    pub backup_volumes: Vec<String>,
}

/// A command run in the component's container and the pattern that finds the number of calls in its
/// output: literal text around exactly one `(\d+)`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CallsSpec {
    pub exec: Vec<String>,
    pub pattern: String,
}

impl CallsSpec {
    /// The number the pattern finds in `output` (the first match), or `None`.
    pub fn count(&self, output: &str) -> Option<u64> {
        let (before, after) = self.pattern.split_once(r"(\d+)")?;
        let mut from = 0;
        while let Some(i) = output[from..].find(before) {
            let start = from + i + before.len();
            let digits: String = output[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if !digits.is_empty() && output[start + digits.len()..].starts_with(after) {
                return digits.parse().ok();
            }
            from = from + i + before.len().max(1);
            if from > output.len() {
                break;
            }
        }
        None
    }

    fn check(&self) -> Result<()> {
        if self.exec.is_empty() {
            bail!("calls: exec is empty");
        }
        if self.pattern.matches(r"(\d+)").count() != 1 {
            bail!(
                "calls: pattern {:?} must hold exactly one (\\d+)",
                self.pattern
            );
        }
        Ok(())
    }
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
    /// Bootstrap tasks, placed between the units they need and the units that need them.
    #[serde(default)]
    pub tasks: Vec<tasks::Task>,
    /// Where each service is reached, per layout (see [`wiring::addresses`]).
    #[serde(default)]
    pub addresses: BTreeMap<String, wiring::Address>,
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
        fn walk(dir: &include_dir::Dir<'static>, out: &mut Vec<(String, String)>) -> Result<()> {
            for f in dir.files() {
                let path = f.path().to_string_lossy().into_owned();
                let text = f
                    .contents_utf8()
                    .with_context(|| format!("units/{path} is not UTF-8"))?;
                out.push((path, text.to_string()));
            }
            dir.dirs().try_for_each(|d| walk(d, out))
        }
        let mut files = Vec::new();
        walk(&EMBEDDED, &mut files)?;
        // A stable order, whatever order the directory was read in at build time.
        files.sort();
        Self::from_files(files)
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
            check_image_key(&c.image, c.image_default.as_deref())
                .map_err(|e| anyhow::anyhow!("units/catalog.yaml: component {}: {e}", c.name))?;
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
        for t in &self.catalog.tasks {
            let fail = |m: String| anyhow::anyhow!("units/catalog.yaml: task {}: {m}", t.name);
            t.check().map_err(fail)?;
            for c in t.after.iter().chain(&t.before) {
                if !self.catalog.components.iter().any(|k| &k.name == c) {
                    return Err(fail(format!("no component named {c}")));
                }
            }
            if let Some(ct) = &t.container {
                if let Some(env) = &ct.env {
                    if !has(&format!("{env}.tera")) {
                        return Err(fail(format!("env template {env}.tera not found")));
                    }
                }
                check_image_key(&ct.image, ct.image_default.as_deref()).map_err(fail)?;
            }
        }
        for c in &self.catalog.components {
            if let Some(calls) = &c.calls {
                calls.check().map_err(|e| {
                    anyhow::anyhow!("units/catalog.yaml: component {}: {e}", c.name)
                })?;
            }
            if let Some(p) = &c.probe {
                p.check().map_err(|e| {
                    anyhow::anyhow!("units/catalog.yaml: component {}: probe: {e}", c.name)
                })?;
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

    /// Render a template string of the catalog (a probe's address, a task's command word).
    pub fn render_str(&self, text: &str, ctx: &tera::Context) -> Result<String> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        tera::Tera::one_off(text, ctx, false)
            .map_err(|e| anyhow::anyhow!("rendering `{text}`: {}", tera_error(&e)))
    }

    /// Evaluate a catalog `when:` expression against the context.
    pub fn condition(&self, expr: &str, ctx: &tera::Context) -> Result<bool> {
        let out = tera::Tera::one_off(&format!("{{% if {expr} %}}1{{% endif %}}"), ctx, false)
            .map_err(|e| anyhow::anyhow!("evaluating `{expr}`: {}", tera_error(&e)))?;
        Ok(out == "1")
    }
}

/// An image key is an image key of the config, or a new name with a valid `image_default`.
fn check_image_key(key: &str, default: Option<&str>) -> Result<(), String> {
    use crate::config::schema::{lookup, Kind};
    match (lookup(key), default) {
        (Some(k), _) if k.kind != Kind::Image => {
            Err(format!("{key} is not an image key of the config"))
        }
        (None, None) => Err(format!(
            "image key {key} is not a config key; give image_default"
        )),
        (None, Some(r)) => r
            .parse::<crate::config::ImageRef>()
            .map(|_| ())
            .map_err(|e| format!("image_default {r:?}: {e}")),
        (Some(_), _) => Ok(()),
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

#[cfg(test)]
mod calls_tests {
    use super::CallsSpec;

    #[test]
    fn counts_calls_in_the_real_tools_output() {
        let asterisk = CallsSpec {
            exec: vec!["asterisk".into()],
            pattern: r"(\d+) active call".into(),
        };
        let out = "2 active channels\n1 active call\n17 calls processed\n";
        assert_eq!(asterisk.count(out), Some(1));
        assert_eq!(
            asterisk.count("0 active channels\n0 active calls\n"),
            Some(0)
        );
        let kamailio = CallsSpec {
            exec: vec!["kamcmd".into()],
            pattern: r"all: (\d+)".into(),
        };
        let out = "{\n\tstarting: 0\n\tconnecting: 0\n\tanswering: 0\n\tongoing: 3\n\tall: 3\n}\n";
        assert_eq!(kamailio.count(out), Some(3));
        let rtpengine = CallsSpec {
            exec: vec!["rtpengine-ctl".into()],
            pattern: r"own: (\d+)".into(),
        };
        let out =
            "Current sessions own: 4\nCurrent sessions foreign: 0\nCurrent sessions total: 4\n";
        assert_eq!(rtpengine.count(out), Some(4));
        assert_eq!(rtpengine.count("error: connection refused"), None);
    }
}
