//! The real [`Postgres`]: the PostgreSQL client tools run inside the host's postgres container
//! (`podman exec oml-postgresql-server …`), in a one-shot container of the postgres image for an
//! external `postgres_host` (`podman run --rm --network=host …`), or from host binaries (tests, and
//! hosts with PostgreSQL installed). The throwaway verification server is `podman run -d` of the same
//! image, or a temp cluster (initdb/pg_ctl) of the same binaries.
//!
//! Restore switches at the database level: the dump is loaded into a new database
//! `<db>_restore_<tag>` and then, in ONE transaction, the live database is renamed
//! `<db>_previous_<tag>` and the new one takes its name. The old data stays until confirmed (or
//! `--discard-previous`), and a kill at any point leaves either the old or the new database live.
use super::seams::{Feed, Postgres, Scratch, Sink};
use crate::exec::blocking;
use anyhow::{bail, Context as _, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How the client tools are run.
#[derive(Debug, Clone)]
pub enum Client {
    /// Binaries in this directory on the host (`/usr/lib/postgresql/15/bin`).
    Host { bin: PathBuf },
    /// `podman exec` in a running container.
    Exec { container: String },
    /// `podman run --rm --network=host` of an image.
    Run { image: String },
}

/// How a throwaway server for verification is made.
#[derive(Debug, Clone)]
pub enum ScratchKind {
    /// initdb + pg_ctl of these binaries, run as `run_as`, on a free 127.0.0.1 port.
    Cluster { bin: PathBuf, run_as: String },
    /// `podman run -d` of this image.
    Container { image: String },
}

#[derive(Debug, Clone)]
pub struct Pg {
    pub client: Client,
    /// None: the container's local socket.
    pub host: Option<String>,
    pub port: u16,
    pub user: String,
    /// Passed in the environment (PGPASSWORD), never on a command line.
    pub password: Option<String>,
    pub database: String,
    pub maintenance_db: String,
    pub scratch: ScratchKind,
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

const COUNT_SQL: &str = "SELECT schemaname || '.' || tablename, \
 (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text \
 FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1";

impl Pg {
    /// `tool` run the configured way, without connection options.
    fn base(&self, tool: &str, stdin: bool) -> Command {
        match &self.client {
            Client::Host { bin } => Command::new(bin.join(tool)),
            Client::Exec { container } => {
                let mut c = Command::new("podman");
                c.arg("exec");
                if stdin {
                    c.arg("-i");
                }
                c.args(["-e", "PGPASSWORD", container, tool]);
                c
            }
            Client::Run { image } => {
                let mut c = Command::new("podman");
                c.args(["run", "--rm", "--network=host", "-e", "PGPASSWORD"]);
                if stdin {
                    c.arg("-i");
                }
                c.args([image.as_str(), tool]);
                c
            }
        }
    }

    fn cmd(&self, tool: &str, stdin: bool) -> Command {
        let mut c = self.base(tool, stdin);
        if let Some(h) = &self.host {
            c.args(["-h", h]);
        }
        c.args(["-p", &self.port.to_string(), "-U", &self.user]);
        c.env("PGPASSWORD", self.password.as_deref().unwrap_or(""));
        c
    }

    fn psql(&self, database: &str, sql: &str) -> Result<String> {
        blocking::output(self.cmd("psql", false).args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ]))
    }

    fn terminate(&self, dbs: &[&str]) -> Result<()> {
        let list: Vec<String> = dbs.iter().map(|d| lit(d)).collect();
        self.psql(
            &self.maintenance_db,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN ({}) AND pid <> pg_backend_pid()",
                list.join(",")
            ),
        )?;
        Ok(())
    }
}

impl Postgres for Pg {
    fn describe(&self) -> String {
        match &self.client {
            Client::Host { bin } => format!("{}", bin.display()),
            Client::Exec { container } => format!("container {container}"),
            Client::Run { image } => image.clone(),
        }
    }

    fn database(&self) -> &str {
        &self.database
    }

    fn dump(&self, sink: Sink) -> Result<()> {
        blocking::read_stdout(
            self.cmd("pg_dump", false)
                .args(["-Fc", "-b", "-d", &self.database]),
            sink,
        )
        .context("pg_dump")
    }

    fn row_counts(&self, database: &str) -> Result<BTreeMap<String, u64>> {
        let out = self.psql(database, COUNT_SQL).context("counting rows")?;
        let mut m = BTreeMap::new();
        for line in out.lines().filter(|l| !l.is_empty()) {
            let (t, n) = line.split_once('\t').context("unexpected psql output")?;
            m.insert(t.to_string(), n.trim().parse().context("row count")?);
        }
        Ok(m)
    }

    fn check_dump(&self, dump: &Path) -> Result<()> {
        let mut f =
            std::fs::File::open(dump).with_context(|| format!("opening {}", dump.display()))?;
        let mut c = self.base("pg_restore", true);
        c.arg("--list");
        blocking::write_stdin(&mut c, |w: &mut dyn std::io::Write| {
            std::io::copy(&mut f, w)?;
            Ok(())
        })
        .context("pg_restore --list: not a readable pg_dump custom-format file")
    }

    fn databases(&self) -> Result<Vec<String>> {
        Ok(self
            .psql(
                &self.maintenance_db,
                "SELECT datname FROM pg_database ORDER BY 1",
            )?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn load(&self, database: &str, feed: Feed) -> Result<()> {
        if self.databases()?.iter().any(|d| d == database) {
            self.drop_database(database)?;
        }
        self.psql(
            &self.maintenance_db,
            &format!("CREATE DATABASE {}", ident(database)),
        )?;
        blocking::write_stdin(
            self.cmd("pg_restore", true).args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                "-d",
                database,
            ]),
            feed,
        )
        .with_context(|| format!("pg_restore into {database}"))
    }

    fn switch(&self, staged: &str, previous: &str) -> Result<()> {
        let live = self.database.clone();
        let exists = self.databases()?.contains(&live);
        let sql = if exists {
            format!(
                "BEGIN; ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {}; COMMIT;",
                ident(&live),
                ident(previous),
                ident(staged),
                ident(&live)
            )
        } else {
            format!(
                "ALTER DATABASE {} RENAME TO {}",
                ident(staged),
                ident(&live)
            )
        };
        // Sessions (an exporter, a straggler) block a rename: end them and try again briefly.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.terminate(&[&live, staged])?;
            match self.psql(&self.maintenance_db, &sql) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() < deadline && format!("{e:#}").contains("other users") => {
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => return Err(e.context(format!("switching {staged} to {live}"))),
            }
        }
    }

    fn drop_database(&self, database: &str) -> Result<()> {
        if database == self.database {
            bail!("refusing to drop the live database {database}");
        }
        self.terminate(&[database])?;
        self.psql(
            &self.maintenance_db,
            &format!("DROP DATABASE IF EXISTS {}", ident(database)),
        )?;
        Ok(())
    }

    fn scratch(&self) -> Result<Scratch> {
        match &self.scratch {
            ScratchKind::Cluster { bin, run_as } => cluster_scratch(bin, run_as),
            ScratchKind::Container { image } => container_scratch(image),
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start a throwaway cluster of `bin`'s binaries as `run_as` in a temp dir; it is stopped and
/// removed when the returned value is dropped. Used for verification and by tests.
pub fn start_cluster(bin: &Path, run_as: &str) -> Result<(Pg, tempfile::TempDir)> {
    let dir = tempfile::Builder::new().prefix("omlboot-pg-").tempdir()?;
    let data = dir.path().join("data");
    let (uid, gid) = {
        let u =
            nix::unistd::User::from_name(run_as)?.with_context(|| format!("no user {run_as}"))?;
        (u.uid, u.gid)
    };
    nix::unistd::chown(dir.path(), Some(uid), Some(gid))?;
    let as_user = |args: &[&str]| -> Result<String> {
        let mut c = Command::new("runuser");
        c.args(["-u", run_as, "--"])
            .args(args)
            .current_dir(dir.path());
        blocking::output(&mut c)
    };
    let initdb = bin.join("initdb");
    let pg_ctl = bin.join("pg_ctl");
    as_user(&[
        initdb.to_str().unwrap(),
        "-D",
        data.to_str().unwrap(),
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
    ])
    .context("initdb")?;
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        match as_user(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-l",
            dir.path().join("log").to_str().unwrap(),
            "-o",
            &opts,
            "-w",
            "start",
        ]) {
            Ok(_) => {
                let pg = Pg {
                    client: Client::Host {
                        bin: bin.to_path_buf(),
                    },
                    host: Some("127.0.0.1".into()),
                    port,
                    user: "postgres".into(),
                    password: None,
                    database: "postgres".into(),
                    maintenance_db: "postgres".into(),
                    scratch: ScratchKind::Cluster {
                        bin: bin.to_path_buf(),
                        run_as: run_as.into(),
                    },
                };
                return Ok((pg, dir));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap().context("pg_ctl start"))
}

/// Stop a cluster started by [`start_cluster`].
pub fn stop_cluster(bin: &Path, run_as: &str, dir: &Path) {
    let _ = Command::new("runuser")
        .args(["-u", run_as, "--"])
        .arg(bin.join("pg_ctl"))
        .args(["-D"])
        .arg(dir.join("data"))
        .args(["-m", "immediate", "-w", "stop"])
        .current_dir(dir)
        .output();
}

fn cluster_scratch(bin: &Path, run_as: &str) -> Result<Scratch> {
    let (mut pg, dir) = start_cluster(bin, run_as)?;
    pg.database = "verify".into();
    let (bin, run_as) = (bin.to_path_buf(), run_as.to_string());
    Ok(Scratch {
        db: Box::new(pg),
        cleanup: Some(Box::new(move || {
            stop_cluster(&bin, &run_as, dir.path());
            drop(dir);
        })),
    })
}

fn container_scratch(image: &str) -> Result<Scratch> {
    let name = format!(
        "oml-backup-verify-{}-{}",
        std::process::id(),
        crate::apply::state::now_unix()
    );
    // No --rm: a container that dies at once must stay for its logs; the cleanup removes it.
    blocking::output(Command::new("podman").args([
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "POSTGRES_HOST_AUTH_METHOD=trust",
        "-e",
        "POSTGRES_DB=postgres",
        image,
    ]))
    .with_context(|| format!("starting a throwaway {image}"))?;
    let cleanup_name = name.clone();
    let scratch = Scratch {
        db: Box::new(Pg {
            client: Client::Exec {
                container: name.clone(),
            },
            // TCP, not the socket: the image's init server listens only on the socket.
            host: Some("127.0.0.1".into()),
            port: 5432,
            user: "postgres".into(),
            password: None,
            database: "verify".into(),
            maintenance_db: "postgres".into(),
            scratch: ScratchKind::Container {
                image: image.into(),
            },
        }),
        cleanup: Some(Box::new(move || {
            let _ = Command::new("podman")
                .args(["rm", "-f", "--ignore", &cleanup_name])
                .output();
        })),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut probe = Command::new("podman");
    probe.args([
        "exec",
        &name,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-c",
        "SELECT 1",
    ]);
    while blocking::output(&mut probe).is_err() {
        let running = blocking::output(Command::new("podman").args([
            "inspect",
            "--format",
            "{{.State.Running}}",
            &name,
        ]));
        if running.is_ok_and(|r| r.trim() == "false") {
            // The image logs to stdout and stderr: both, as podman prints them.
            let logs = Command::new("podman")
                .args(["logs", "--tail", "20", &name])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout).into_owned()
                        + &String::from_utf8_lossy(&o.stderr)
                })
                .unwrap_or_else(|e| format!("(no logs: {e})"));
            bail!(
                "the throwaway {image} exited before accepting connections: {}",
                crate::exec::tail(&logs, 5)
            );
        }
        if Instant::now() > deadline {
            bail!("the throwaway {image} did not accept connections within 120 s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<String> {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn pg(client: Client, host: Option<&str>) -> Pg {
        Pg {
            client,
            host: host.map(str::to_string),
            port: 5432,
            user: "omnileads".into(),
            password: Some("s3cret-pass".into()),
            database: "omnileads".into(),
            maintenance_db: "postgres".into(),
            scratch: ScratchKind::Container {
                image: "docker.io/postgres:14.9-bullseye".into(),
            },
        }
    }

    #[test]
    fn podman_command_lines_keep_the_password_off_argv() {
        let exec = pg(
            Client::Exec {
                container: "oml-postgresql-server".into(),
            },
            None,
        );
        let c = exec.cmd("pg_dump", false);
        assert_eq!(
            args(&c).join(" "),
            "podman exec -e PGPASSWORD oml-postgresql-server pg_dump -p 5432 -U omnileads"
        );
        assert!(c
            .get_envs()
            .any(|(k, v)| k == "PGPASSWORD" && v == Some("s3cret-pass".as_ref())));
        let run = pg(
            Client::Run {
                image: "docker.io/postgres:14.9-bullseye".into(),
            },
            Some("10.0.0.9"),
        );
        assert_eq!(
            args(&run.cmd("pg_restore", true)).join(" "),
            "podman run --rm --network=host -e PGPASSWORD -i docker.io/postgres:14.9-bullseye pg_restore -h 10.0.0.9 -p 5432 -U omnileads"
        );
        assert!(!args(&run.cmd("psql", false))
            .iter()
            .any(|a| a.contains("s3cret")));
    }
}
