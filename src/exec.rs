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

/// Blocking runs for streaming work (backup, restore): a program's stdout or stdin is a pipe the
/// caller reads or writes as it goes, so a dump never sits whole in memory. stderr is collected on a
/// thread and its tail quoted when the program fails.
pub mod blocking {
    use anyhow::{Context as _, Result};
    use std::io::{Read, Write};
    use std::process::{Child, Command, Stdio};

    fn spawn(cmd: &mut Command, stdin: Stdio, stdout: Stdio) -> Result<Child> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        cmd.stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {program}"))
    }

    /// Run `cmd` and hand its stdout to `f` as it is produced.
    pub fn read_stdout(
        cmd: &mut Command,
        f: impl FnOnce(&mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let mut child = spawn(cmd, Stdio::null(), Stdio::piped())?;
        let mut out = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take();
        let collector = stderr.map(|mut e| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            })
        });
        let what = f(&mut out);
        if what.is_err() {
            let _ = child.kill();
        }
        drop(out);
        let err = collector.and_then(|h| h.join().ok()).unwrap_or_default();
        let status = child.wait()?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        if !status.success() && what.is_ok() {
            anyhow::bail!("{program} exited with {status}: {}", super::tail(&err, 5));
        }
        what.with_context(|| format!("reading the output of {program}"))
    }

    /// Run `cmd` and let `f` write its stdin; stdin is closed when `f` returns.
    pub fn write_stdin(
        cmd: &mut Command,
        f: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let mut child = spawn(cmd, Stdio::piped(), Stdio::null())?;
        let stderr = child.stderr.take();
        let collector = stderr.map(|mut e| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            })
        });
        let mut input = child.stdin.take().expect("piped stdin");
        let what = f(&mut input);
        drop(input);
        let err = collector.and_then(|h| h.join().ok()).unwrap_or_default();
        let status = child.wait()?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        if !status.success() {
            anyhow::bail!("{program} exited with {status}: {}", super::tail(&err, 5));
        }
        what.with_context(|| format!("feeding {program}"))
    }

    /// Run `cmd` to the end; a non-zero exit is an error quoting its stderr. Returns stdout.
    pub fn output(cmd: &mut Command) -> Result<String> {
        let child = spawn(cmd, Stdio::null(), Stdio::piped())?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let out = child
            .wait_with_output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            anyhow::bail!(
                "{program} exited with {}: {}",
                out.status,
                super::tail(&String::from_utf8_lossy(&out.stderr), 5)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
