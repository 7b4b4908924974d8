//! Thin binary: parse the command line, call the library, map errors to exit codes.
mod cli;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use cli::{Cli, Command, Format};
use omlboot::apply;
use omlboot::catalog::Units;
use omlboot::config::{Config, ConfigErrors, Sources};
use omlboot::exit;
use omlboot::facts::{self, Facts};
use omlboot::plan::{self, render, secrets, Plan};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
    Ok(Config::load(&sources(g)?)?)
}

fn sources(g: &cli::Global) -> Result<Sources> {
    Ok(Sources {
        file: Sources::read_file(g.config.as_deref())?,
        env: std::env::vars().collect(),
        sets: g.sets.clone(),
        role: g.role.clone(),
    })
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
        Command::Apply { format } => apply_now(g, *format, false),
        Command::Run { format } => apply_now(g, *format, true),
        Command::Bake { no_clean, format } => bake(g, *no_clean, *format),
        Command::Status {
            wait,
            timeout,
            format,
        } => status(g, *wait, *timeout, *format),
    }
}

/// Build the apply options from config and facts.
fn apply_options(
    g: &cli::Global,
    cfg: &Config,
    facts: &Facts,
    instance_id: String,
) -> apply::engine::Options {
    let images = apply::images::ImageOptions {
        parallel: cfg.int("image_pull_parallel").unwrap_or(3) as usize,
        auth_file: cfg.text("registry_auth_file").map(PathBuf::from),
        tls_verify: !matches!(
            cfg.get("registry_tls_verify"),
            Some(omlboot::config::Value::Bool(false))
        ),
        ..Default::default()
    };
    apply::engine::Options {
        root: g.root.clone(),
        family: facts.os.family,
        skip_packages: cfg.flag("skip_packages"),
        image_bundle: cfg.text("image_bundle").map(PathBuf::from),
        images,
        packages: apply::packages::PackageOptions::default(),
        start_deadline: Duration::from_secs(cfg.int("unit_start_timeout_s").unwrap_or(300)),
        instance_id,
    }
}

fn apply_now(g: &cli::Global, format: Format, only_once: bool) -> Result<i32> {
    let mut cfg = load_config(g)?;
    let units = load_units(g)?;
    let rt = runtime()?;
    let instance = apply::state::instance_id(&g.root).ok_or_else(|| {
        Invalid(
            "cannot identify this instance: no cloud-init instance-id and no /etc/machine-id"
                .into(),
        )
    })?;
    // One apply at a time per host: cloud-init's runcmd and a first-boot unit may both call `run`.
    let _lock = apply::state::lock(&g.root)?;
    if only_once && apply::state::already_provisioned(&g.root, &instance)? {
        eprintln!("omlboot: already provisioned for {instance}; nothing to do (use `omlboot apply` to converge again)");
        return Ok(exit::OK);
    }
    let facts = rt.block_on(facts::gather(&g.root, &cfg));
    if facts.private_ip.is_none() {
        return Err(Invalid(
            "cannot determine this host's private IP (omni_ip_lan): set omni_ip_lan or omni_nic"
                .into(),
        )
        .into());
    }
    for w in &facts.warnings {
        eprintln!("warning: {w}");
    }
    let store = secrets::load(&g.root)?;
    let plan = plan::build(&mut cfg, &facts, &units, &store)?;
    let opts = apply_options(g, &cfg, &facts, instance);
    let started = std::time::Instant::now();
    let state = rt.block_on(apply::engine::apply(&plan, &opts))?;
    match format {
        Format::Json => print_json(&state)?,
        Format::Table => print!("{}", status_table(&state)),
    }
    eprintln!(
        "omlboot: {:?} in {:.1}s",
        state.status,
        started.elapsed().as_secs_f64()
    );
    Ok(state.status.exit_code())
}

fn bake(g: &cli::Global, no_clean: bool, format: Format) -> Result<i32> {
    use omlboot::bake;
    let mut cfg = Config::load_for_bake(&sources(g)?)?;
    if !cfg.is_given("role") {
        return Err(Invalid(
            "bake needs the role the image is for: --role aio|data|voice|app".into(),
        )
        .into());
    }
    bake::fill_placeholders(&mut cfg);
    let units = load_units(g)?;
    let mut facts =
        Facts::from_config_only(&cfg).context("bake placeholders left an address open")?;
    facts.os = facts::os::read(&g.root);
    let plan = plan::build(&mut cfg, &facts, &units, &Default::default())?;
    let opts = apply_options(g, &cfg, &facts, "bake".into());
    let started = std::time::Instant::now();
    let rt = runtime()?;
    let _lock = apply::state::lock(&g.root)?;
    let state = rt.block_on(apply::engine::prepare(&plan, &opts))?;
    if state.status != apply::state::Status::Done {
        match format {
            Format::Json => print_json(&state)?,
            Format::Table => print!("{}", status_table(&state)),
        }
        eprintln!("omlboot: bake failed; the image was not cleaned");
        return Ok(exit::FAILED);
    }
    let exe = std::env::current_exe().context("locating this omlboot binary")?;
    let actions = rt.block_on(bake::finish(&g.root, &exe, &plan, !no_clean))?;
    match format {
        Format::Json => print_json(
            &serde_json::json!({ "status": state.status, "steps": state.steps, "actions": actions }),
        )?,
        Format::Table => {
            for a in &actions {
                eprintln!("omlboot: {:<48} {}", a.what, a.outcome);
            }
        }
    }
    eprintln!(
        "omlboot: baked role {} in {:.1}s{}",
        cfg.role().as_str(),
        started.elapsed().as_secs_f64(),
        if no_clean {
            " (not cleaned)"
        } else {
            "; cleaned for cloning"
        }
    );
    Ok(exit::OK)
}

fn status_table(s: &apply::state::State) -> String {
    let mut out = format!(
        "status: {:?} (role {}, {})\n",
        s.status, s.role, s.instance_id
    )
    .to_lowercase();
    let w = s.components.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, c) in &s.components {
        out.push_str(&format!(
            "  {name:<w$}  {:<10} {}{}\n",
            c.state,
            c.unit,
            c.reason
                .as_ref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        ));
    }
    for e in &s.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

fn status(g: &cli::Global, wait: bool, timeout: Option<u64>, format: Format) -> Result<i32> {
    let deadline = timeout.map(|t| std::time::Instant::now() + Duration::from_secs(t));
    loop {
        let state = apply::state::State::load(&g.root)?;
        let finished = state
            .as_ref()
            .is_some_and(|s| s.status != apply::state::Status::Running);
        if !wait || finished {
            return match state {
                None => {
                    match format {
                        Format::Json => {
                            print_json(&serde_json::json!({ "status": "not started" }))?
                        }
                        Format::Table => println!("status: not started"),
                    }
                    Ok(exit::OK)
                }
                Some(s) => {
                    match format {
                        Format::Json => print_json(&s)?,
                        Format::Table => print!("{}", status_table(&s)),
                    }
                    Ok(s.status.exit_code())
                }
            };
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            eprintln!("omlboot: status --wait: timed out");
            return Ok(exit::FAILED);
        }
        std::thread::sleep(Duration::from_millis(500));
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
