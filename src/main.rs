//! Thin binary: flags → one `omlboot::cmd` function → its outcome and exit code; the rest is library.
mod cli;

use clap::Parser as _;
use cli::{Cli, Command, Format};
use omlboot::cmd::{self, Report};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let inputs = cli.global.inputs();
    let (outcome, format): (omlboot::Result<Box<dyn Report>>, Format) = match &cli.command {
        Command::Validate { format } => (boxed(cmd::validate(&inputs)), *format),
        Command::Detect { format } => (boxed(cmd::detect(&inputs)), *format),
        Command::Plan { format } => (boxed(cmd::plan(&inputs)), *format),
        Command::Render { out } => (boxed(cmd::render(&inputs, out)), Format::Table),
        Command::Apply { format, force } => (boxed(cmd::apply_force(&inputs, *force)), *format),
        Command::Upgrade { force, format } => (boxed(cmd::upgrade(&inputs, *force)), *format),
        Command::Rollback { components, format } => {
            (boxed(cmd::rollback(&inputs, components)), *format)
        }
        Command::Run { format } => (boxed(cmd::run(&inputs)), *format),
        Command::Bake { no_clean, format } => (boxed(cmd::bake(&inputs, !*no_clean)), *format),
        Command::Backup {
            scheduled,
            list,
            format,
        } => (boxed(cmd::backup(&inputs, *scheduled, *list)), *format),
        Command::Restore {
            source,
            discard_previous,
            format,
        } => (
            boxed(cmd::restore(&inputs, source, *discard_previous)),
            *format,
        ),
        Command::Status {
            wait,
            timeout,
            format,
        } => {
            let timeout = timeout.map(Duration::from_secs);
            (boxed(cmd::status(&inputs, *wait, timeout)), *format)
        }
    };
    let code = match outcome {
        Ok(report) => {
            print(report.as_ref(), format);
            report.code()
        }
        Err(e) => {
            eprint!("omlboot: {e}");
            if !matches!(e, omlboot::Error::Config(_)) {
                eprintln!();
            }
            e.code()
        }
    };
    ExitCode::from(code.as_i32() as u8)
}

fn boxed<T: Report + 'static>(r: omlboot::Result<T>) -> omlboot::Result<Box<dyn Report>> {
    r.map(|t| Box::new(t) as Box<dyn Report>)
}

fn print(report: &dyn Report, format: Format) {
    let json = format == Format::Json;
    let mut out = std::io::stdout().lock();
    if json {
        let v = report.json();
        if !v.is_null() {
            let _ = serde_json::to_writer_pretty(&mut out, &v);
            let _ = writeln!(out);
        }
    } else {
        let _ = write!(out, "{}", report.table());
    }
    for note in report.notes(json) {
        eprintln!("{note}");
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
