//! /var/lib/omlboot/state.json: each step's outcome and each component's state, written as apply
//! progresses so `omlboot status` can report while it runs. Also the run-once-per-instance marker.
use crate::error::Code;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const STATE_PATH: &str = "var/lib/omlboot/state.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Done,
    Failed,
    Degraded,
}

impl Status {
    /// Exit code of `omlboot status` and of apply/run (like `cloud-init status`).
    pub fn code(self) -> Code {
        match self {
            Status::Running | Status::Done => Code::Ok,
            Status::Failed => Code::Failed,
            Status::Degraded => Code::Degraded,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    /// changed, unchanged, failed, skipped
    pub outcome: String,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    pub unit: String,
    /// active, failed, pending, restarted, unchanged …
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its health probe's last result, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// What was probed (`tcp 127.0.0.1:5432`, `http https://127.0.0.1/ → 302`, `exec pg_isready …`).
    pub probe: String,
    pub passed: bool,
    /// The last attempt's answer (status, error, command output tail).
    pub detail: String,
    pub at_unix: u64,
    /// From the unit being active to the probe passing (or giving up).
    pub took_ms: u64,
    pub attempts: u32,
}

/// A bootstrap task's last outcome. Kept across runs: it decides whether the task runs again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// succeeded, failed, blocked
    pub outcome: String,
    pub at_unix: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// The end of its output (or the error), for `status`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_tail: String,
    /// The inputs' fingerprint and the image id of the last success: they decide a re-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_unix: Option<u64>,
    /// Runs that succeeded on this host, all time.
    #[serde(default)]
    pub successes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub status: Status,
    /// The instance this run provisioned (cloud-init instance-id, else machine-id).
    pub instance_id: String,
    pub role: String,
    pub started_unix: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_unix: Option<u64>,
    pub steps: Vec<StepRecord>,
    pub components: BTreeMap<String, ComponentRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// reference → image id of every image of the plan once it was present: a later run whose plan
    /// has the same references and whose units all run needs no image listing at all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// Bootstrap tasks by name, carried from run to run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, TaskRecord>,
    /// Reminders for the operator (the admin/admin login after the reset), shown by `run` and `status`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Per component: the image it runs, the previous one kept for a rollback, and how its last
    /// image change (or voice restart) went. Carried from run to run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upgrades: BTreeMap<String, UpgradeRecord>,
    /// What the run before this one did when it was killed or lost power (its state.json still said
    /// running when this run took the lock): kept, since this run's records replace its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interrupted>,
    /// Components whose files (unit, env, config, certificate) a run changed before (re)starting
    /// them: written before the file, cleared once the component is active again. A run killed in
    /// between leaves the files as the plan wants them, so the next run, which finds nothing to
    /// change, still owes their restart (and systemd its daemon-reload). Carried from run to run.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub restart_owed: BTreeSet<String>,
}

/// A summary of a run that never finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interrupted {
    pub started_unix: u64,
    /// Steps it had recorded, and the last of them.
    pub steps: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<String>,
    /// Components it had seen active, of all it manages.
    pub components_active: usize,
    pub components: usize,
}

impl Interrupted {
    /// The summary of `previous` when it is a run that never finished, else None.
    pub fn of(previous: &State) -> Option<Interrupted> {
        (previous.status == Status::Running).then(|| Interrupted {
            started_unix: previous.started_unix,
            steps: previous.steps.len(),
            last_step: previous.steps.last().map(|s| s.name.clone()),
            components_active: previous
                .components
                .values()
                .filter(|c| c.state == "active")
                .count(),
            components: previous.components.len(),
        })
    }
}

/// A component's images: what it runs (confirmed healthy), what it ran before, and the outcome of the
/// last change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeRecord {
    /// The reference its unit runs; after a rollback, the reference it was rolled back from (the
    /// host is degraded while the plan still names that reference).
    pub reference: String,
    /// The image id it was last confirmed healthy on (after its start, or its upgrade's gate).
    pub image_id: String,
    /// The image id it ran before the last change, kept (tagged) for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
    /// The name that keeps the previous image from a prune: `localhost/omlboot-previous/<component>:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_tag: Option<String>,
    /// installed, upgraded, rolled back, waiting for drain, waiting for window, restarted, not
    /// restarted, failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub at_unix: u64,
    /// The database dump taken before its last upgrade (restored by its rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
    /// The image id a rollback moved away from (not tried again until the reference changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_id: Option<String>,
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    pub fn new(instance_id: &str, role: &str) -> State {
        State {
            version: 1,
            status: Status::Running,
            instance_id: instance_id.to_string(),
            role: role.to_string(),
            started_unix: now_unix(),
            finished_unix: None,
            steps: Vec::new(),
            components: BTreeMap::new(),
            errors: Vec::new(),
            images: BTreeMap::new(),
            tasks: BTreeMap::new(),
            notices: Vec::new(),
            upgrades: BTreeMap::new(),
            interrupted: None,
            restart_owed: BTreeSet::new(),
        }
    }

    pub fn path(root: &Path) -> PathBuf {
        root.join(STATE_PATH)
    }

    pub fn load(root: &Path) -> Result<Option<State>> {
        crate::fsutil::read_json(&Self::path(root))
    }

    /// Written 0600: component reasons may quote journal lines.
    pub fn save(&self, root: &Path) -> Result<()> {
        crate::fsutil::write_json(&Self::path(root), self)
    }

    /// Final status from the component records: any failure of a required component is failed;
    /// failures only in optional ones (exporters, promtail) are degraded.
    pub fn conclude(&mut self, optional: &[&str]) {
        let failed: Vec<&String> = self
            .components
            .iter()
            .filter(|(_, c)| c.state == "failed" || c.probe.as_ref().is_some_and(|p| !p.passed))
            .map(|(n, _)| n)
            .collect();
        let task_failed = self
            .tasks
            .values()
            .any(|t| !matches!(t.outcome.as_str(), "succeeded" | "skipped" | "rolled back"));
        self.status = if task_failed
            || !self.errors.is_empty()
            || failed.iter().any(|n| !optional.contains(&n.as_str()))
        {
            Status::Failed
        } else if !failed.is_empty() {
            Status::Degraded
        } else {
            Status::Done
        };
        self.finished_unix = Some(now_unix());
    }
}

/// Identity of this instance: cloud-init's instance-id when cloud-init ran, else the machine-id.
/// A cloned image gets a new one of either, so it provisions again; a reboot keeps it, so it does not.
pub fn instance_id(root: &Path) -> Option<String> {
    let from_instance_data =
        std::fs::read_to_string(root.join("run/cloud-init/instance-data.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["v1"]["instance_id"].as_str().map(str::to_string));
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    from_instance_data
        .or_else(|| read("var/lib/cloud/data/instance-id"))
        .map(|id| format!("cloud-init:{id}"))
        .or_else(|| read("etc/machine-id").map(|id| format!("machine-id:{id}")))
}

fn lock_path(root: &Path) -> PathBuf {
    let dir = if root.join("run").is_dir() {
        root.join("run")
    } else {
        root.join(STATE_PATH)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.to_path_buf())
    };
    dir.join("omlboot.lock")
}

/// Whether an omlboot holds the host-wide lock now. A state that says `running` while nobody holds
/// it was left by a run that was killed or lost its power.
pub fn lock_held(root: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .open(lock_path(root))
    else {
        return false;
    };
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
}

/// Hold the host-wide apply lock (`/run/omlboot.lock`) until the returned guard drops, waiting for
/// another omlboot that holds it.
pub fn lock(root: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let path = lock_path(root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(guard) => Ok(guard),
        Err((file, _)) => {
            eprintln!(
                "omlboot: another omlboot is applying ({} is held); waiting",
                path.display()
            );
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", path.display()))
        }
    }
}

/// Drop the records of the tasks `names`: the next apply runs them as on a new host (their records
/// describe a database a restore has since replaced). The caller holds the apply lock. Returns
/// the names that had a record.
pub fn forget_tasks(root: &Path, names: &[String]) -> Result<Vec<String>> {
    let Some(mut state) = State::load(root)? else {
        return Ok(Vec::new());
    };
    let forgotten: Vec<String> = names
        .iter()
        .filter(|n| state.tasks.remove(n.as_str()).is_some())
        .cloned()
        .collect();
    if !forgotten.is_empty() {
        state.save(root)?;
    }
    Ok(forgotten)
}

/// `omlboot run` applies only when the last finished run was for another instance (or never happened),
/// or did not finish successfully.
pub fn already_provisioned(root: &Path, instance: &str) -> Result<bool> {
    Ok(State::load(root)?.is_some_and(|s| {
        s.instance_id == instance && matches!(s.status, Status::Done | Status::Degraded)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_conclude() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::new("machine-id:abc", "aio");
        s.components.insert(
            "redis".into(),
            ComponentRecord {
                unit: "redis.service".into(),
                state: "active".into(),
                reason: None,
                probe: None,
            },
        );
        s.components.insert(
            "promtail".into(),
            ComponentRecord {
                unit: "promtail.service".into(),
                state: "failed".into(),
                reason: Some("x".into()),
                probe: None,
            },
        );
        s.conclude(&["promtail"]);
        assert_eq!(s.status, Status::Degraded);
        assert_eq!(s.status.code(), Code::Degraded);
        s.save(d.path()).unwrap();
        assert_eq!(State::load(d.path()).unwrap().unwrap(), s);
        assert!(already_provisioned(d.path(), "machine-id:abc").unwrap());
        assert!(!already_provisioned(d.path(), "machine-id:other").unwrap());
        s.components.get_mut("redis").unwrap().state = "failed".into();
        s.conclude(&["promtail"]);
        assert_eq!(s.status.code(), Code::Failed);
    }

    #[test]
    fn forget_tasks_drops_only_the_named_records() {
        let d = tempfile::tempdir().unwrap();
        let names = ["a".to_string(), "b".to_string()];
        assert!(
            forget_tasks(d.path(), &names).unwrap().is_empty(),
            "no state yet"
        );
        let mut s = State::new("machine-id:abc", "aio");
        s.status = Status::Done;
        for n in ["a", "c"] {
            s.tasks.insert(
                n.into(),
                TaskRecord {
                    outcome: "succeeded".into(),
                    successes: 1,
                    ..Default::default()
                },
            );
        }
        s.save(d.path()).unwrap();
        assert_eq!(forget_tasks(d.path(), &names).unwrap(), ["a"]);
        let after = State::load(d.path()).unwrap().unwrap();
        assert_eq!(after.tasks.keys().collect::<Vec<_>>(), ["c"]);
        assert_eq!(after.status, Status::Done);
        assert!(forget_tasks(d.path(), &names).unwrap().is_empty());
    }

    #[test]
    fn instance_id_prefers_cloud_init() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(instance_id(d.path()), None);
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/machine-id"), "m1\n").unwrap();
        assert_eq!(instance_id(d.path()).as_deref(), Some("machine-id:m1"));
        std::fs::create_dir_all(d.path().join("run/cloud-init")).unwrap();
        std::fs::write(
            d.path().join("run/cloud-init/instance-data.json"),
            r#"{"v1":{"instance_id":"i-123"}}"#,
        )
        .unwrap();
        assert_eq!(instance_id(d.path()).as_deref(), Some("cloud-init:i-123"));
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn second_locker_waits_for_the_first() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("run")).unwrap();
        let g = lock(d.path()).unwrap();
        let root = d.path().to_path_buf();
        let t = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            let _g2 = lock(&root).unwrap();
            t.elapsed()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(g);
        let waited = h.join().unwrap();
        assert!(
            waited >= std::time::Duration::from_millis(250),
            "second lock did not wait: {waited:?}"
        );
    }
}
