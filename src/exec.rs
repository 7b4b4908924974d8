//! The one way omlboot runs a program: stdin closed, output captured, an optional time limit, and
//! errors that quote the end of stderr (never the whole of it: tools print pages).
use anyhow::{Context as _, Result};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// What a finished program left.
#[derive(Debug, Clone)]
pub struct Ran {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` to the end (or until `limit`, then it is killed and this is an error).
pub async fn capture(cmd: &mut Command, limit: Option<Duration>) -> Result<Ran> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = cmd.output();
    let out = match limit {
        Some(d) => tokio::time::timeout(d, run)
            .await
            .map_err(|_| anyhow::anyhow!("{program} did not finish within {}s", d.as_secs()))?,
        None => run.await,
    }
    .with_context(|| format!("running {program}"))?;
    Ok(Ran {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Run `program args`; a non-zero exit is an error quoting the last lines of its stderr.
pub async fn run(program: &str, args: &[&str]) -> Result<()> {
    let ran = capture(Command::new(program).args(args), None).await?;
    if !ran.success {
        anyhow::bail!("{program} {}: {}", args.join(" "), tail(&ran.stderr, 5));
    }
    Ok(())
}

/// The last `n` non-empty lines of `text`, trimmed.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
