//! Thin binary: parse the command line, call the library, map errors to exit codes.
mod cli;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use cli::{Cli, Command, Format};
use omlboot::catalog::Units;
use omlboot::config::{Config, ConfigErrors, Sources};
use omlboot::exit;
use omlboot::facts::{self, Facts};
use omlboot::plan::{self, render, secrets, Plan};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Errors that map to "invalid input" (exit 2) rather than "failed" (exit 1).
#[derive(Debug)]
struct Invalid(String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Invalid {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigErrors>() {
                eprint!("omlboot: {ce}");
                return ExitCode::from(exit::INVALID as u8);
            }
            eprintln!("omlboot: error: {e:#}");
            let code = if e.downcast_ref::<Invalid>().is_some() {
                exit::INVALID
            } else {
                exit::FAILED
            };
            ExitCode::from(code as u8)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMLBOOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn load_config(g: &cli::Global) -> Result<Config> {
    let src = Sources {
        file: Sources::read_file(g.config.as_deref())?,
        env: std::env::vars().collect(),
        sets: g.sets.clone(),
        role: g.role.clone(),
    };
    Ok(Config::load(&src)?)
}

fn load_units(g: &cli::Global) -> Result<Units> {
    match &g.units {
        Some(dir) => Units::from_dir(dir)
            .map_err(|e| Invalid(format!("--units {}: {e:#}", dir.display())).into()),
        None => Units::embedded(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Facts for plan/render: none gathered when the config fixes every address (no network, no host reads).
fn plan_facts(g: &cli::Global, cfg: &Config) -> Result<Facts> {
    match Facts::from_config_only(cfg) {
        Some(f) => Ok(f),
        None => Ok(runtime()?.block_on(facts::gather(&g.root, cfg))),
    }
}

fn make_plan(g: &cli::Global, cfg: &mut Config, store_roots: &[&Path]) -> Result<Plan> {
    let units = load_units(g)?;
    let facts = plan_facts(g, cfg)?;
    if facts.private_ip.is_none() {
        return Err(Invalid(
            "cannot determine this host's private IP (omni_ip_lan): set omni_ip_lan or omni_nic"
                .into(),
        )
        .into());
    }
    let mut store = Default::default();
    for root in store_roots {
        store = secrets::load(root)?;
        if !store.is_empty() {
            break;
        }
    }
    plan::build(cfg, &facts, &units, &store)
}

fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Validate { format } => {
            let cfg = load_config(g)?;
            match format {
                Format::Json => print_json(
                    &serde_json::json!({ "valid": true, "values": cfg.redacted(), "warnings": cfg.warnings }),
                )?,
                Format::Table => {
                    let rows = cfg.redacted();
                    let w = rows.keys().map(|k| k.len()).max().unwrap_or(0);
                    for (k, (v, o)) in rows {
                        println!("{k:<w$}  {v}  ({o})");
                    }
                    for warn in &cfg.warnings {
                        eprintln!("warning: {warn}");
                    }
                }
            }
            Ok(exit::OK)
        }
        Command::Detect { format } => {
            let cfg = load_config(g)?;
            let facts = runtime()?.block_on(facts::gather(&g.root, &cfg));
            match format {
                Format::Json => print_json(&facts)?,
                Format::Table => print!("{}", detect_table(&facts)),
            }
            Ok(exit::OK)
        }
        Command::Plan { format } => {
            let mut cfg = load_config(g)?;
            let plan = make_plan(g, &mut cfg, &[&g.root])?;
            match format {
                Format::Json => print_json(&plan)?,
                Format::Table => print!("{}", plan.table()),
            }
            Ok(exit::OK)
        }
        Command::Render { out } => {
            let mut cfg = load_config(g)?;
            let plan = make_plan(g, &mut cfg, &[out, &g.root])?;
            let (written, unchanged) = render::render(&plan, out)?;
            eprintln!(
                "rendered {} files under {} ({written} written, {unchanged} unchanged)",
                written + unchanged,
                out.display()
            );
            Ok(exit::OK)
        }
    }
}

fn detect_table(f: &Facts) -> String {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut s = String::new();
    let mut row = |k: &str, v: String| s.push_str(&format!("{k:<18} {v}\n"));
    row(
        "os",
        format!("{} ({:?})", f.os.pretty_name, f.os.family).to_lowercase(),
    );
    row("podman", opt(&f.podman_version));
    row("systemd", opt(&f.systemd_version));
    for n in &f.nics {
        let addrs: Vec<String> = n
            .ipv4
            .iter()
            .map(|a| format!("{}/{}", a.address, a.prefix))
            .collect();
        row(
            &format!("nic {}", n.name),
            format!(
                "{}{}",
                if addrs.is_empty() {
                    "-".into()
                } else {
                    addrs.join(" ")
                },
                if n.is_virtual { " (virtual)" } else { "" }
            ),
        );
    }
    row("default route", opt(&f.default_route_nic));
    row(
        "private ip",
        format!(
            "{} on {} ({})",
            f.private_ip.map(|i| i.to_string()).unwrap_or("-".into()),
            opt(&f.nic),
            opt(&f.private_ip_source)
        ),
    );
    row(
        "platform",
        format!("{:?} ({})", f.platform, f.platform_evidence).to_lowercase(),
    );
    row(
        "public ip",
        format!(
            "{} ({})",
            f.public_ip.map(|i| i.to_string()).unwrap_or("-".into()),
            opt(&f.public_ip_source)
        ),
    );
    row(
        "infra_env",
        format!("{} ({})", f.infra_env, f.infra_env_source),
    );
    row(
        "resources",
        format!(
            "{} cpu, {} MiB, {} GiB free",
            f.resources.cpus, f.resources.memory_mib, f.resources.disk_free_gib
        ),
    );
    for w in &f.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}
