//! The Terraform examples in cloud-config/terraform:
//! - every `.tf`, `.tfvars` and `.tfvars.example` file parses as HCL2, and every `.tftpl` as an HCL
//!   template (hcl-rs); a failure names the file and the parse error;
//! - secret variables are `sensitive` and have no default;
//! - every template, rendered with sample values for aio, data, voice and app (hcl-rs's template
//!   evaluation, with a `jsonencode` that matches Terraform's), is `#cloud-config` user-data that writes
//!   a 0600 /etc/omlboot/config.yaml and runs omlboot, or is an omlboot config; either way the config
//!   passes `omlboot validate` and keeps a password full of YAML-special characters intact;
//! - remote-exec/omlboot-remote.sh installs the binary and config and maps omlboot's exit codes.
//!
//! With OMLBOOT_TF_RENDER_DIR=DIR the renders are also written to DIR, with their sample values and
//! a `renders.tsv` index, for .ci/integrations.sh (cloud-init schema, Terraform's own templatefile).
mod common;
use common::*;
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

/// Characters that would break a YAML plain or single-quoted scalar, and HTML-escaped by jsonencode.
const TRICKY: &str = r#"p@ss: #1 "q" 'x' \ <&> {[%]}"#;

fn terraform_dir() -> PathBuf {
    repo("cloud-config/terraform")
}

/// Every file under `dir`, sorted, skipping Terraform's working directories.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != ".terraform") {
                out.extend(files(&p));
            }
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn name(p: &Path) -> String {
    p.strip_prefix(repo("")).unwrap_or(p).display().to_string()
}

fn is_hcl_body(p: &Path) -> bool {
    let n = p.file_name().unwrap().to_string_lossy();
    n.ends_with(".tf") || n.ends_with(".tfvars") || n.ends_with(".tfvars.example")
}

fn is_template(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "tftpl")
}

#[test]
fn every_terraform_file_parses_as_hcl2() {
    let mut errors = Vec::new();
    let (mut bodies, mut templates) = (0, 0);
    for p in files(&terraform_dir()) {
        let text = std::fs::read_to_string(&p).unwrap();
        if is_hcl_body(&p) {
            bodies += 1;
            if let Err(e) = hcl::parse(&text) {
                errors.push(format!("{}: {e}", name(&p)));
            }
        } else if is_template(&p) {
            templates += 1;
            if let Err(e) = hcl::Template::from_str(&text) {
                errors.push(format!("{}: {e}", name(&p)));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "HCL parse errors:\n{}",
        errors.join("\n")
    );
    assert!(
        bodies >= 12 && templates >= 3,
        "expected the three examples' .tf files and templates, found {bodies} HCL files and {templates} templates"
    );
}

#[test]
fn secret_variables_are_sensitive_and_never_defaulted() {
    let mut errors = Vec::new();
    let mut secrets = 0;
    for p in files(&terraform_dir()) {
        if p.extension().is_none_or(|x| x != "tf") {
            continue;
        }
        let body = hcl::parse(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", name(&p)));
        for block in body.blocks().filter(|b| b.identifier() == "variable") {
            let var = block.labels()[0].as_str();
            if !["password", "pass", "secret"]
                .iter()
                .any(|w| var.contains(w))
            {
                continue;
            }
            secrets += 1;
            let attr = |k: &str| block.body().attributes().find(|a| a.key() == k);
            if !matches!(
                attr("sensitive").map(|a| a.expr()),
                Some(hcl::Expression::Bool(true))
            ) {
                errors.push(format!(
                    "{}: variable {var} is not sensitive = true",
                    name(&p)
                ));
            }
            if attr("default").is_some() {
                errors.push(format!("{}: variable {var} has a default", name(&p)));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(
        secrets >= 12,
        "expected 4 secret variables in each of 3 examples, found {secrets}"
    );
}

/// Terraform's jsonencode: JSON with `<`, `>`, `&`, U+2028 and U+2029 escaped (Go's HTML-safe JSON).
fn jsonencode(args: FuncArgs) -> Result<hcl::Value, String> {
    let json = serde_json::to_string(&args[0]).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    Ok(hcl::Value::from(out))
}

/// Sample template variables for one host: the superset every template here takes (Terraform's
/// templatefile, like this, ignores the ones a template does not use).
fn sample_vars(role: &str) -> serde_json::Value {
    let cluster = role != "aio";
    serde_json::json!({
        "role": role,
        "tenant_id": "demo",
        "tz": "America/Argentina/Cordoba",
        "infra_env": if cluster { "lan" } else { "nat" },
        "nat_ip_addr": if cluster { "" } else { "203.0.113.5" },
        "data_host": if cluster { "10.10.10.11" } else { "" },
        "voice_host": if cluster { "10.10.10.12" } else { "" },
        "application_host": if cluster { "10.10.10.13" } else { "" },
        "postgres_password": TRICKY,
        "ami_password": "Sample-Ami-Pass1",
        "s3_http_admin_pass": "Sample-Minio-Root1",
        "bucket_secret_key": "Sample-Bucket-Secret1",
    })
}

fn render(template: &Path, vars: &serde_json::Value) -> Result<String, String> {
    let text = std::fs::read_to_string(template).unwrap();
    let tpl = hcl::Template::from_str(&text).map_err(|e| e.to_string())?;
    let mut ctx = Context::new();
    ctx.declare_func(
        "jsonencode",
        FuncDef::builder().param(ParamType::Any).build(jsonencode),
    );
    for (k, v) in vars.as_object().unwrap() {
        ctx.declare_var(k.as_str(), v.as_str().unwrap());
    }
    tpl.evaluate(&ctx).map_err(|e| e.to_string())
}

/// The omlboot config carried by a render: the write_files content of user-data, or the render itself.
fn config_of(what: &str, rendered: &str) -> String {
    if !rendered.starts_with("#cloud-config") {
        return rendered.to_string();
    }
    assert!(
        rendered.starts_with("#cloud-config\n"),
        "{what}: the first line must be exactly #cloud-config"
    );
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(rendered)
        .unwrap_or_else(|e| panic!("{what}: not YAML: {e}\n{rendered}"));
    let files = doc["write_files"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{what}: no write_files"));
    let cfg = files
        .iter()
        .find(|f| f["path"] == "/etc/omlboot/config.yaml")
        .unwrap_or_else(|| panic!("{what}: no /etc/omlboot/config.yaml in write_files"));
    assert_eq!(
        cfg["permissions"].as_str(),
        Some("0600"),
        "{what}: config must be 0600"
    );
    assert_eq!(
        cfg["owner"].as_str(),
        Some("root:root"),
        "{what}: config must be root's"
    );
    let runcmd = serde_yaml_ng::to_string(&doc["runcmd"]).unwrap();
    assert!(
        runcmd.contains("/usr/local/bin/omlboot") && runcmd.contains("run"),
        "{what}: runcmd must run omlboot: {runcmd}"
    );
    cfg["content"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: config content is not a string"))
        .to_string()
}

#[test]
fn every_template_renders_a_config_that_omlboot_validates() {
    let dump = std::env::var_os("OMLBOOT_TF_RENDER_DIR").map(PathBuf::from);
    let mut index = String::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut rendered_count = 0;
    let templates: Vec<PathBuf> = files(&terraform_dir())
        .into_iter()
        .filter(|p| is_template(p))
        .collect();
    assert!(templates.len() >= 3, "expected a template per example");
    for template in &templates {
        for role in ["aio", "data", "voice", "app"] {
            let what = format!("{} ({role})", name(template));
            let vars = sample_vars(role);
            let rendered = render(template, &vars).unwrap_or_else(|e| panic!("{what}: {e}"));
            let config = config_of(&what, &rendered);

            let cfg_path = tmp.path().join("config.yaml");
            std::fs::write(&cfg_path, &config).unwrap();
            let o = omlboot(&["validate", "--config", cfg_path.to_str().unwrap()]);
            assert!(
                o.status.success(),
                "{what}: omlboot validate failed:\n{}\n--- config ---\n{config}",
                stderr(&o)
            );
            // The values arrive as given, whatever YAML-special characters they hold.
            let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&config).unwrap();
            assert_eq!(doc["role"].as_str(), Some(role), "{what}: role");
            assert_eq!(
                doc["postgres_password"].as_str(),
                Some(TRICKY),
                "{what}: postgres_password did not survive the YAML"
            );
            if role != "aio" {
                assert_eq!(doc["data_host"].as_str(), Some("10.10.10.11"), "{what}");
                assert_eq!(
                    doc["application_host"].as_str(),
                    Some("10.10.10.13"),
                    "{what}"
                );
            }
            rendered_count += 1;

            if let Some(dir) = &dump {
                std::fs::create_dir_all(dir).unwrap();
                let rel = template
                    .strip_prefix(terraform_dir())
                    .unwrap()
                    .to_string_lossy()
                    .replace('/', "__");
                let out = dir.join(format!("{rel}.{role}.rendered"));
                let vars_path = dir.join(format!("{rel}.{role}.vars.json"));
                std::fs::write(&out, &rendered).unwrap();
                std::fs::write(&vars_path, serde_json::to_string_pretty(&vars).unwrap()).unwrap();
                index.push_str(&format!(
                    "{}\t{}\t{}\n",
                    template.display(),
                    vars_path.display(),
                    out.display()
                ));
            }
        }
    }
    assert_eq!(rendered_count, templates.len() * 4);
    if let Some(dir) = &dump {
        std::fs::write(dir.join("renders.tsv"), index).unwrap();
    }
}

/// A stand-in omlboot for the remote-exec script: records its arguments, exits with STUB_RC.
const STUB: &str = r#"#!/bin/sh
echo "$*" >> "$STUB_LOG"
case "$1" in
  --version) echo "omlboot stub"; exit 0 ;;
  status) echo "status: stub"; exit 1 ;;
esac
exit "$STUB_RC"
"#;

/// Run omlboot-remote.sh against the stub; returns its exit code, the temp dir (DESTDIR is
/// `root/` in it) and the stub's calls.
fn remote_script(
    command: &str,
    stub_rc: i32,
    fail_on_degraded: bool,
) -> (i32, tempfile::TempDir, String) {
    let guard = tempfile::tempdir().unwrap();
    let tmp = guard.path();
    let staging = tmp.join("staging");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("omlboot"), STUB).unwrap();
    std::fs::set_permissions(
        staging.join("omlboot"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(staging.join("config.yaml"), "role: aio\n").unwrap();
    let log = tmp.join("stub.log");
    let dest = tmp.join("root");
    let o = std::process::Command::new("sh")
        .arg(repo("cloud-config/terraform/remote-exec/omlboot-remote.sh"))
        .arg(&staging)
        .arg(command)
        .arg(fail_on_degraded.to_string())
        .env("OMLBOOT_DESTDIR", &dest)
        .env("STUB_LOG", &log)
        .env("STUB_RC", stub_rc.to_string())
        .output()
        .unwrap();
    assert!(!staging.exists(), "the staging directory must be removed");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    (o.status.code().unwrap_or(-1), guard, calls)
}

#[test]
fn remote_exec_script_installs_and_maps_exit_codes() {
    // (omlboot's exit, fail_on_degraded) -> the provisioner's exit
    for (rc, strict, want) in [
        (0, false, 0),
        (1, false, 1),
        (2, false, 2),
        (3, false, 0),
        (3, true, 3),
        (7, false, 7),
    ] {
        let (got, tmp, calls) = remote_script("apply", rc, strict);
        let dest = tmp.path().join("root");
        assert_eq!(
            got, want,
            "omlboot exit {rc}, fail_on_degraded={strict}: script exited {got}, calls:\n{calls}"
        );
        let cfg = dest.join("etc/omlboot/config.yaml");
        let bin = dest.join("usr/local/bin/omlboot");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cfg), 0o600, "config mode");
        assert_eq!(mode(&bin), 0o755, "binary mode");
        assert!(
            calls.contains(&format!("apply --config {}", cfg.display())),
            "omlboot apply was not called with the installed config:\n{calls}"
        );
        assert_eq!(
            calls.contains("status"),
            rc == 1 || rc == 3,
            "status is shown after a failed or degraded run only:\n{calls}"
        );
    }
    let (got, _tmp, calls) = remote_script("deploy", 0, false);
    assert_eq!(got, 2, "an unknown command is a usage error");
    assert!(
        calls.is_empty(),
        "omlboot must not run for an unknown command"
    );
}
