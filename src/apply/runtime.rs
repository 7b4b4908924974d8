//! What runs in and against the containers once their units are up: bootstrap tasks (one-shot
//! containers, service calls) and health probes. A seam like packages, images and units: the real one
//! here (podman, TCP, HTTP, MinIO's APIs), an in-memory one in [`super::fake`].
use crate::plan::{PlannedTask, Probe, TaskAction};
use std::future::Future;
use std::time::Duration;
use tokio::process::Command;

/// How one attempt of a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRun {
    pub ok: bool,
    /// The container's exit status (one-shot containers).
    pub exit_status: Option<i32>,
    /// What it printed (or the error), the end of it is kept in state.
    pub output: String,
}

pub trait Runtime: Send + Sync + 'static {
    /// One attempt of `task`, bounded by its timeout.
    fn run_task(&self, task: &PlannedTask) -> impl Future<Output = TaskRun> + Send;
    /// One attempt of `probe`: Ok(what it saw) when healthy, Err(what it saw) otherwise.
    fn probe_once(&self, probe: &Probe) -> impl Future<Output = Result<String, String>> + Send;
    /// How many calls `container` carries now (upgrade, drain): its `calls` command and pattern.
    fn count_calls(
        &self,
        container: &str,
        calls: &crate::catalog::CallsSpec,
    ) -> impl Future<Output = Result<u64, String>> + Send;
    /// `pg_dump -Fc` of the application database, inside the PostgreSQL container, into `path`.
    fn dump_database(
        &self,
        path: &std::path::Path,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Restore a dump taken by [`Runtime::dump_database`] (`pg_restore --clean`).
    fn restore_database(
        &self,
        path: &std::path::Path,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The real host: podman for containers, sockets for probes, MinIO's S3 and admin APIs.
pub struct Live;

/// Longest wait for one probe attempt.
const PROBE_ATTEMPT: Duration = Duration::from_secs(5);

impl Runtime for Live {
    async fn run_task(&self, task: &PlannedTask) -> TaskRun {
        let limit = Duration::from_secs(task.timeout_s);
        match &task.action {
            TaskAction::Container {
                image,
                command,
                env_file,
                volumes,
            } => {
                let name = format!("omlboot-task-{}", task.name);
                // A container of the same name left by a killed run would make `run` fail.
                let _ = crate::exec::capture(
                    Command::new("podman").args(["rm", "-f", "--ignore", &name]),
                    Some(Duration::from_secs(60)),
                )
                .await;
                let mut cmd = Command::new("podman");
                cmd.args(["run", "--rm", "--network=host", "--name", &name]);
                if let Some(f) = env_file {
                    cmd.arg(format!("--env-file={f}"));
                }
                for v in volumes {
                    cmd.arg(format!("--volume={v}"));
                }
                cmd.arg(image).args(command);
                let ran = crate::exec::capture(&mut cmd, Some(limit)).await;
                match ran {
                    Ok(r) => TaskRun {
                        ok: r.success,
                        exit_status: r.code,
                        output: format!("{}{}", r.stdout, r.stderr),
                    },
                    Err(e) => {
                        let _ = crate::exec::capture(
                            Command::new("podman").args(["rm", "-f", "--ignore", &name]),
                            Some(Duration::from_secs(60)),
                        )
                        .await;
                        TaskRun {
                            ok: false,
                            exit_status: None,
                            output: format!("{e:#}"),
                        }
                    }
                }
            }
            TaskAction::S3Bootstrap { .. } => {
                match tokio::time::timeout(limit, s3_bootstrap(&task.action)).await {
                    Ok(Ok(summary)) => TaskRun {
                        ok: true,
                        exit_status: None,
                        output: summary,
                    },
                    Ok(Err(e)) => TaskRun {
                        ok: false,
                        exit_status: None,
                        output: format!("{e:#}"),
                    },
                    Err(_) => TaskRun {
                        ok: false,
                        exit_status: None,
                        output: format!("did not finish within {}s", limit.as_secs()),
                    },
                }
            }
        }
    }

    async fn count_calls(
        &self,
        container: &str,
        calls: &crate::catalog::CallsSpec,
    ) -> Result<u64, String> {
        count_calls_live(container, calls).await
    }

    async fn dump_database(&self, path: &std::path::Path) -> Result<(), String> {
        pg_script(
            r#"pg_dump -Fc -U "$POSTGRES_USER" "$POSTGRES_DB""#,
            path,
            true,
        )
        .await
    }

    async fn restore_database(&self, path: &std::path::Path) -> Result<(), String> {
        pg_script(
            r#"pg_restore --clean --if-exists --single-transaction -U "$POSTGRES_USER" -d "$POSTGRES_DB""#,
            path,
            false,
        )
        .await
    }

    async fn probe_once(&self, probe: &Probe) -> Result<String, String> {
        match probe {
            Probe::Tcp { address, .. } => {
                // Several addresses, space separated: a component binds 0.0.0.0 on one layout and
                // only the host's address on another; the first that answers is enough.
                let mut errors = Vec::new();
                for a in address.split_whitespace() {
                    match tokio::time::timeout(PROBE_ATTEMPT, tokio::net::TcpStream::connect(a))
                        .await
                    {
                        Ok(Ok(_)) => return Ok(format!("connected to {a}")),
                        Ok(Err(e)) => errors.push(format!("{a}: {e}")),
                        Err(_) => errors.push(format!("{a}: no answer within 5s")),
                    }
                }
                Err(errors.join("; "))
            }
            Probe::Http { url, status, .. } => {
                // Certificates are not checked (the host's own are self-signed), so the system's
                // roots are not loaded either: parsing them took most of a probe under emulation.
                let client = reqwest::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .tls_built_in_root_certs(false)
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(PROBE_ATTEMPT)
                    .build()
                    .map_err(|e| e.to_string())?;
                match client.get(url).send().await {
                    Ok(r) if r.status().as_u16() == *status => {
                        Ok(format!("{url} answered {}", r.status().as_u16()))
                    }
                    Ok(r) => Err(format!(
                        "{url} answered {}, expected {status}",
                        r.status().as_u16()
                    )),
                    Err(e) => Err(format!("{url}: {}", error_chain(&e))),
                }
            }
            Probe::Postgres {
                address,
                user,
                database,
                ..
            } => postgres_ready(address, user, database).await,
            Probe::Redis { address, .. } => redis_ready(address).await,
            Probe::Exec {
                container, command, ..
            } => {
                let ran = crate::exec::capture(
                    Command::new("podman")
                        .args(["exec", container])
                        .args(command),
                    Some(PROBE_ATTEMPT * 2),
                )
                .await;
                match ran {
                    Ok(r) => {
                        let out = crate::exec::tail(&format!("{}{}", r.stdout, r.stderr), 2);
                        if r.success {
                            Ok(out)
                        } else {
                            Err(format!("exit {}: {out}", r.code.unwrap_or(-1)))
                        }
                    }
                    Err(e) => Err(format!("{e:#}")),
                }
            }
        }
    }
}

/// The container the application database runs in (aio and data hosts).
pub const POSTGRES_CONTAINER: &str = "oml-postgresql-server";

/// Longest wait for a database dump or restore.
const DUMP_LIMIT: Duration = Duration::from_secs(3600);

async fn count_calls_live(
    container: &str,
    calls: &crate::catalog::CallsSpec,
) -> Result<u64, String> {
    let ran = crate::exec::capture(
        Command::new("podman")
            .args(["exec", container])
            .args(&calls.exec),
        Some(PROBE_ATTEMPT * 2),
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    let out = format!("{}{}", ran.stdout, ran.stderr);
    if !ran.success {
        return Err(format!(
            "{} exited {}: {}",
            calls.exec.join(" "),
            ran.code.unwrap_or(-1),
            crate::exec::tail(&out, 2)
        ));
    }
    calls.count(&out).ok_or_else(|| {
        format!(
            "{:?} not found in the output of {}: {}",
            calls.pattern,
            calls.exec.join(" "),
            crate::exec::tail(&out, 2)
        )
    })
}

/// Run `script` with sh inside the PostgreSQL container, stdin/stdout bound to `path`.
async fn pg_script(script: &str, path: &std::path::Path, dump: bool) -> Result<(), String> {
    let file = if dump {
        std::fs::File::create(path)
    } else {
        std::fs::File::open(path)
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cmd = Command::new("podman");
    cmd.args(["exec", "-i", POSTGRES_CONTAINER, "sh", "-c", script]);
    if dump {
        cmd.stdout(file);
    } else {
        cmd.stdin(file);
    }
    cmd.stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| format!("podman exec: {e}"))?;
    match tokio::time::timeout(DUMP_LIMIT, child.wait_with_output()).await {
        Ok(Ok(o)) if o.status.success() => {
            if dump {
                std::fs::File::open(path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(())
        }
        Ok(Ok(o)) => Err(format!(
            "exit {}: {}",
            o.status.code().unwrap_or(-1),
            crate::exec::tail(&String::from_utf8_lossy(&o.stderr), 3)
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("did not finish within {}s", DUMP_LIMIT.as_secs())),
    }
}

/// Bucket, application user and readwrite policy on MinIO, each only when missing.
async fn s3_bootstrap(action: &TaskAction) -> anyhow::Result<String> {
    let TaskAction::S3Bootstrap {
        endpoint,
        region,
        bucket,
        access_key,
        secret_key,
        root_user,
        root_password,
    } = action
    else {
        anyhow::bail!("not an S3 bootstrap task");
    };
    let root = crate::s3::ClientConfig::new(endpoint, region, root_user, root_password.expose());
    let outcome = crate::s3::bootstrap(root, bucket, access_key, secret_key.expose()).await?;
    Ok(format!("{outcome}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// `pg_isready`'s question, asked over the wire: a protocol 3.0 startup packet, then the server's
/// first answer. An authentication request, or any error but 57P03 (starting up, shutting down,
/// in recovery), means it accepts connections; the connection is closed before authenticating.
pub async fn postgres_ready(address: &str, user: &str, database: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes());
        for (k, v) in [("user", user), ("database", database)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        s.write_all(&packet)
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let mut head = [0u8; 5];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("{address}: no answer to the startup packet: {e}"))?;
        match head[0] {
            // An authentication request: it accepts connections; no need to read further.
            b'R' => Ok(format!("{address} accepts connections")),
            b'E' => {
                let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                let mut body = vec![0u8; len.saturating_sub(4).min(8192)];
                s.read_exact(&mut body)
                    .await
                    .map_err(|e| format!("{address}: truncated answer: {e}"))?;
                let fields = error_fields(&body);
                let code = fields.get(&b'C').map(String::as_str).unwrap_or("");
                let message = fields.get(&b'M').map(String::as_str).unwrap_or("");
                if code == "57P03" {
                    Err(format!("{address}: {message} ({code})"))
                } else {
                    Ok(format!("{address} accepts connections ({code} {message})"))
                }
            }
            other => Err(format!(
                "{address}: not a PostgreSQL answer (message type {:?})",
                other as char
            )),
        }
    };
    tokio::time::timeout(PROBE_ATTEMPT, talk)
        .await
        .unwrap_or_else(|_| Err(format!("{address}: no answer within 5s")))
}

/// An ErrorResponse body: (field type, value) pairs, each value NUL-terminated.
fn error_fields(body: &[u8]) -> std::collections::BTreeMap<u8, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        out.insert(kind, String::from_utf8_lossy(&tail[..end]).into_owned());
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    out
}

/// `redis-cli ping`, over the wire: PONG, or a request for a password, means it serves; LOADING
/// (reading its dataset) or anything else does not.
pub async fn redis_ready(address: &str) -> Result<String, String> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        s.write_all(b"*1\r\n$4\r\nPING\r\n")
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let mut line = String::new();
        tokio::io::BufReader::new(&mut s)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let line = line.trim_end();
        if line == "+PONG" || line.starts_with("-NOAUTH") {
            Ok(format!("{address} answered {line}"))
        } else if line.is_empty() {
            Err(format!("{address}: closed without an answer to PING"))
        } else {
            Err(format!("{address} answered {line}"))
        }
    };
    tokio::time::timeout(PROBE_ATTEMPT, talk)
        .await
        .unwrap_or_else(|_| Err(format!("{address}: no answer within 5s")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tcp_probe_passes_on_the_first_address_that_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        // A port nothing listens on: bind one, note it, close it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let probe = |address: String| Probe::Tcp {
            address,
            deadline_s: 1,
        };
        let ok = Live
            .probe_once(&probe(format!("{closed} {open}")))
            .await
            .unwrap();
        assert_eq!(ok, format!("connected to {open}"));
        let err = Live
            .probe_once(&probe(format!("{closed}")))
            .await
            .unwrap_err();
        assert!(err.contains(&closed.to_string()), "{err}");
    }
}
