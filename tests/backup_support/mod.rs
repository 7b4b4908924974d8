//! Shared by tests/backup_*.rs: a throwaway PostgreSQL 15 cluster (installed with apt-get when
//! missing), a database with rows, directory volumes and a recording fake of the units.
#![allow(dead_code)]
use omlboot::backup::pg::{self, Pg};
use omlboot::backup::seams::{Postgres, Services};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// apt-get install `pkg` unless `probe` exists (CI: a fresh Debian 12, as root).
pub fn ensure(probe: &str, pkg: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    if Path::new(probe).exists() {
        return;
    }
    let st = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", pkg])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get");
    if !st.success() {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let st = Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", pkg])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .unwrap();
        assert!(st.success(), "apt-get install {pkg} failed");
    }
}

/// A running cluster with database `omnileads`; stopped and removed on drop.
pub struct Cluster {
    pub pg: Pg,
    pub dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        pg::stop_cluster(Path::new(BIN), "postgres", self.dir.path());
    }
}

pub fn cluster() -> Cluster {
    ensure(&format!("{BIN}/initdb"), "postgresql-15");
    let (mut pg, dir) = pg::start_cluster(Path::new(BIN), "postgres").expect("cluster");
    psql(&pg, "postgres", "CREATE DATABASE omnileads");
    pg.database = "omnileads".into();
    Cluster { pg, dir }
}

pub fn psql(pg: &Pg, db: &str, sql: &str) -> String {
    let out = Command::new(format!("{BIN}/psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Tables like OMniLeads' with `n` rows of calls.
pub fn fill(pg: &Pg, n: u64) {
    psql(
        pg,
        "omnileads",
        &format!(
            "CREATE TABLE ominicontacto_app_campana (id serial primary key, nombre text not null);
             CREATE TABLE reportes_app_llamadalog (id bigserial primary key, campana_id int references ominicontacto_app_campana(id), event text, ts timestamptz default now());
             CREATE SCHEMA extra; CREATE TABLE extra.notes (k text primary key, v bytea);
             INSERT INTO ominicontacto_app_campana (nombre) SELECT 'campana ' || g FROM generate_series(1, 5) g;
             INSERT INTO reportes_app_llamadalog (campana_id, event) SELECT 1 + g % 5, md5(g::text) FROM generate_series(1, {n}) g;
             INSERT INTO extra.notes VALUES ('a', 'x'), ('b', NULL);"
        ),
    );
}

pub fn rows(pg: &Pg, table: &str) -> u64 {
    psql(pg, &pg.database, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

/// Units restore stops and starts, recorded.
#[derive(Default)]
pub struct FakeServices {
    pub log: Mutex<Vec<String>>,
}

impl Services for FakeServices {
    fn stop(&self, units: &[String]) -> anyhow::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("stop {}", units.join(" ")));
        Ok(())
    }
    fn start(&self, units: &[String]) -> anyhow::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("start {}", units.join(" ")));
        Ok(())
    }
}

pub fn spec(work: PathBuf) -> omlboot::backup::Spec {
    omlboot::backup::Spec {
        tenant: "acme".into(),
        template: "{tenant}/dow_{weekday}".into(),
        volumes: vec!["asterisk_conf".into(), "asterisk_sounds".into()],
        images: [(
            "postgres_img".to_string(),
            "docker.io/postgres:15".to_string(),
        )]
        .into(),
        config: Default::default(),
        work,
        chunk: 64 << 10,
        verify: true,
        retention: None,
    }
}

/// Volumes root with asterisk custom/override files.
pub fn volumes(root: &Path) -> omlboot::backup::seams::DirVolumes {
    let conf = root.join("asterisk_conf");
    std::fs::create_dir_all(conf.join("custom")).unwrap();
    std::fs::create_dir_all(conf.join("override")).unwrap();
    std::fs::write(
        conf.join("custom/oml_extensions_custom.conf"),
        "[from-custom]\nexten => 1,1,NoOp\n",
    )
    .unwrap();
    std::fs::write(conf.join("override/pjsip.conf"), "; override\n").unwrap();
    // asterisk_sounds does not exist on this host: skipped, not an error.
    omlboot::backup::seams::DirVolumes {
        root: root.to_path_buf(),
    }
}

pub fn writers() -> Vec<String> {
    vec!["omnileads.service".into(), "asterisk.service".into()]
}

pub fn database_names(pg: &Pg) -> Vec<String> {
    pg.databases().unwrap()
}
