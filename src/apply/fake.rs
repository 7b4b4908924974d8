//! In-memory stand-ins for the package manager, the image store and systemd, for tests of the
//! engine's decisions. Each records what it was asked, in order, in a shared journal of calls, and
//! can be told to fail a given package, image or unit.
use super::images::{FailKind, ImageOutcome};
use super::packages::PackagesOutcome;
use super::runtime::{Runtime, TaskRun};
use super::seams::{ImageStore, PackageManager, ServiceManager};
use super::systemd::{Outcome, UnitState};
use crate::plan::{PlannedTask, Probe};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every call any fake received, in order: `"pull docker.io/x:1"`, `"start redis.service"`, ...
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn push(&self, call: String) {
        self.0.lock().unwrap().push(call);
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// The calls that start with `prefix` ("start ", "restart ", "pull ").
    pub fn with(&self, prefix: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct FakePackages {
    pub calls: Calls,
    pub installed: Mutex<BTreeSet<String>>,
    /// Installing any of these fails.
    pub broken: BTreeSet<String>,
}

impl PackageManager for FakePackages {
    async fn ensure(&self, names: &[String]) -> Result<PackagesOutcome> {
        self.calls.push(format!("packages {}", names.join(" ")));
        if let Some(b) = names.iter().find(|n| self.broken.contains(*n)) {
            anyhow::bail!("E: Unable to locate package {b}");
        }
        let mut installed = self.installed.lock().unwrap();
        let mut out = PackagesOutcome::default();
        for n in names {
            if installed.insert(n.clone()) {
                out.installed.push(n.clone());
            } else {
                out.already.push(n.clone());
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Default)]
pub struct FakeImages {
    pub calls: Calls,
    /// reference → image id in local storage (shared with [`FakeSystemd::images`]).
    pub present: Arc<Mutex<BTreeMap<String, String>>>,
    /// What a registry would serve: reference → image id. A reference missing here fails to pull.
    pub registry: BTreeMap<String, String>,
}

impl ImageStore for FakeImages {
    async fn ids(&self, refs: &[String]) -> BTreeMap<String, Option<String>> {
        self.calls.push("list images".into());
        let present = self.present.lock().unwrap();
        refs.iter()
            .map(|r| (r.clone(), present.get(r).cloned()))
            .collect()
    }
    async fn pull(&self, refs: &[String]) -> Vec<(String, ImageOutcome)> {
        let mut present = self.present.lock().unwrap();
        refs.iter()
            .map(|r| {
                self.calls.push(format!("pull {r}"));
                let outcome = match (present.get(r), self.registry.get(r)) {
                    (Some(id), _) => ImageOutcome::Present { id: id.clone() },
                    (None, Some(id)) => {
                        present.insert(r.clone(), id.clone());
                        ImageOutcome::Pulled {
                            id: id.clone(),
                            attempts: 1,
                        }
                    }
                    (None, None) => ImageOutcome::Failed {
                        kind: FailKind::NotFound,
                        message: format!("{r}: manifest unknown"),
                        attempts: 1,
                    },
                };
                (r.clone(), outcome)
            })
            .collect()
    }
    async fn load_bundle(&self, bundle: &Path) -> Result<Vec<(String, ImageOutcome)>> {
        self.calls.push(format!("load bundle {}", bundle.display()));
        Ok(Vec::new())
    }
    async fn tag(&self, id: &str, reference: &str) -> Result<()> {
        self.calls.push(format!("tag {id} {reference}"));
        let mut present = self.present.lock().unwrap();
        anyhow::ensure!(
            present.values().any(|v| v == id),
            "podman tag {id} {reference}: image not known"
        );
        present.insert(reference.to_string(), id.to_string());
        Ok(())
    }
}

/// systemd as a table of unit states. A started unit becomes active unless it is in `failing`.
#[derive(Debug, Default)]
pub struct FakeSystemd {
    pub calls: Calls,
    /// unit → active state (active, inactive, failed). Units not listed are not loaded.
    pub units: Mutex<BTreeMap<String, String>>,
    pub enabled: Mutex<BTreeSet<String>>,
    /// Units whose start fails.
    pub failing: BTreeSet<String>,
    /// unit → image reference its unit file on disk runs ([`wire`] fills it from a plan).
    pub refs: Mutex<BTreeMap<String, String>>,
    /// What systemd read at its last daemon-reload (`refs` then): a start runs this, as systemd runs
    /// the unit file it loaded, not the one on disk. A unit never loaded starts from `refs`.
    pub loaded: Mutex<BTreeMap<String, String>>,
    /// The image store's reference → id (shared with [`FakeImages::present`]).
    pub images: Arc<Mutex<BTreeMap<String, String>>>,
    /// unit → image id its container was last started from (shared with [`FakeRuntime::running`]).
    pub running: Arc<Mutex<BTreeMap<String, String>>>,
    /// unit → NRestarts (restarts systemd made by itself; tests raise it to fake a crash loop).
    pub n_restarts: Mutex<BTreeMap<String, u32>>,
    /// Image ids whose containers crash and are restarted by systemd: each read of the state of a
    /// unit running one counts one more NRestarts.
    pub crashing_images: Mutex<BTreeSet<String>>,
}

impl FakeSystemd {
    fn state_of(&self, unit: &str) -> UnitState {
        let running = self.running.lock().unwrap().get(unit).cloned();
        if running.is_some_and(|id| self.crashing_images.lock().unwrap().contains(&id)) {
            *self
                .n_restarts
                .lock()
                .unwrap()
                .entry(unit.to_string())
                .or_default() += 1;
        }
        let units = self.units.lock().unwrap();
        let active = units.get(unit).cloned();
        UnitState {
            unit: unit.to_string(),
            load_state: if active.is_some() {
                "loaded"
            } else {
                "not-found"
            }
            .into(),
            active_state: active.unwrap_or_else(|| "inactive".into()),
            sub_state: String::new(),
            result: String::new(),
            n_restarts: self
                .n_restarts
                .lock()
                .unwrap()
                .get(unit)
                .copied()
                .unwrap_or(0),
            exec_main_status: 0,
            active_enter_timestamp: 0,
            unit_file_state: if self.enabled.lock().unwrap().contains(unit) {
                "enabled".into()
            } else {
                "disabled".into()
            },
            service_type: "simple".into(),
        }
    }
}

impl ServiceManager for FakeSystemd {
    async fn daemon_reload(&self) -> Result<()> {
        self.calls.push("daemon-reload".into());
        *self.loaded.lock().unwrap() = self.refs.lock().unwrap().clone();
        Ok(())
    }
    async fn enable(&self, units: &[String]) -> Result<Vec<String>> {
        self.calls.push(format!("enable {}", units.join(" ")));
        let mut enabled = self.enabled.lock().unwrap();
        Ok(units
            .iter()
            .filter(|u| enabled.insert((*u).clone()))
            .map(|u| format!("symlink {u}"))
            .collect())
    }
    async fn states(&self, units: &[String]) -> Result<Vec<UnitState>> {
        Ok(units.iter().map(|u| self.state_of(u)).collect())
    }
    async fn reset_failed(&self, unit: &str) -> Result<()> {
        self.calls.push(format!("reset-failed {unit}"));
        Ok(())
    }
    async fn start(
        &self,
        unit: &str,
        restart: bool,
        _deadline: Duration,
        queued: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Outcome> {
        let verb = if restart { "restart" } else { "start" };
        self.calls.push(format!("{verb} {unit}"));
        let _ = queued.send(());
        let reference = (self.loaded.lock().unwrap().get(unit).cloned())
            .or_else(|| self.refs.lock().unwrap().get(unit).cloned());
        if let Some(id) = reference.and_then(|r| self.images.lock().unwrap().get(&r).cloned()) {
            self.running.lock().unwrap().insert(unit.to_string(), id);
        }
        let ok = !self.failing.contains(unit);
        self.units.lock().unwrap().insert(
            unit.to_string(),
            if ok { "active" } else { "failed" }.into(),
        );
        let state = self.state_of(unit);
        Ok(if ok {
            Outcome::Active(state)
        } else {
            Outcome::Failed {
                job_result: "failed".into(),
                state,
                journal: vec![format!("{unit}: exited with status 1")],
            }
        })
    }
}

/// Tasks and probes: a task succeeds unless its name is in `failing_tasks`; a probe passes unless
/// its description contains one of `failing_probes`, or the unit it checks runs an image id in
/// `broken_images`. Calls: each count pops the next number of the container's script (the last one
/// stays; none is 0).
#[derive(Debug, Default)]
pub struct FakeRuntime {
    pub calls: Calls,
    pub failing_tasks: Mutex<BTreeSet<String>>,
    pub failing_probes: Mutex<BTreeSet<String>>,
    /// Image ids whose containers never pass their probe.
    pub broken_images: Mutex<BTreeSet<String>>,
    /// probe description → the unit it checks ([`wire`] fills it from a plan).
    pub probe_units: Mutex<BTreeMap<String, String>>,
    /// probe description → other units its answer comes through (nginx's 302 is uwsgi's): it fails
    /// too when one of them runs a broken image. Tests fill it.
    pub probe_needs: Mutex<BTreeMap<String, Vec<String>>>,
    /// unit → image id it runs (shared with [`FakeSystemd::running`]).
    pub running: Arc<Mutex<BTreeMap<String, String>>>,
    /// container → the call counts it answers, in turn.
    pub call_counts: Mutex<BTreeMap<String, VecDeque<u64>>>,
}

impl Runtime for FakeRuntime {
    async fn run_task(&self, task: &PlannedTask) -> TaskRun {
        self.calls.push(format!("task {}", task.name));
        let ok = !self.failing_tasks.lock().unwrap().contains(&task.name);
        TaskRun {
            ok,
            exit_status: Some(if ok { 0 } else { 3 }),
            output: if ok {
                "done".into()
            } else {
                format!("{}: relation \"x\" does not exist", task.name)
            },
        }
    }
    async fn probe_once(&self, probe: &Probe) -> Result<String, String> {
        let what = probe.describe();
        self.calls.push(format!("probe {what}"));
        let mut units: Vec<String> = self
            .probe_units
            .lock()
            .unwrap()
            .get(&what)
            .cloned()
            .into_iter()
            .collect();
        units.extend(
            self.probe_needs
                .lock()
                .unwrap()
                .get(&what)
                .cloned()
                .unwrap_or_default(),
        );
        let broken = units.iter().any(|u| {
            self.running
                .lock()
                .unwrap()
                .get(u)
                .is_some_and(|id| self.broken_images.lock().unwrap().contains(id))
        });
        if broken
            || self
                .failing_probes
                .lock()
                .unwrap()
                .iter()
                .any(|f| what.contains(f.as_str()))
        {
            Err(format!("{what}: connection refused"))
        } else {
            Ok(format!("{what}: ok"))
        }
    }
    async fn count_calls(
        &self,
        container: &str,
        _calls: &crate::catalog::CallsSpec,
    ) -> Result<u64, String> {
        self.calls.push(format!("calls {container}"));
        let mut counts = self.call_counts.lock().unwrap();
        let script = counts.entry(container.to_string()).or_default();
        Ok(if script.len() > 1 {
            script.pop_front().unwrap_or(0)
        } else {
            script.front().copied().unwrap_or(0)
        })
    }
    async fn dump_database(&self, path: &Path) -> Result<(), String> {
        self.calls.push(format!("dump {}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, b"PGDMP fake").map_err(|e| e.to_string())
    }
    async fn restore_database(&self, path: &Path) -> Result<(), String> {
        self.calls.push(format!("restore {}", path.display()));
        if path.is_file() {
            Ok(())
        } else {
            Err(format!("{}: no such dump", path.display()))
        }
    }
}

impl FakeRuntime {
    /// Polls of the call count of `container` so far.
    pub fn call_polls(&self, container: &str) -> usize {
        self.calls.with(&format!("calls {container}")).len()
    }
}

/// The fake host [`host`] builds.
pub type FakeHost = super::engine::Host<FakePackages, FakeImages, FakeSystemd, FakeRuntime>;

/// A host made of the fakes sharing one journal of `calls`: the registry holds `registry`
/// (reference → image id), and the units in `failing` fail to start.
pub fn host(calls: &Calls, registry: BTreeMap<String, String>, failing: &[&str]) -> FakeHost {
    let present = Arc::new(Mutex::new(BTreeMap::new()));
    let running = Arc::new(Mutex::new(BTreeMap::new()));
    super::engine::Host {
        packages: FakePackages {
            calls: calls.clone(),
            ..Default::default()
        },
        images: FakeImages {
            calls: calls.clone(),
            registry,
            present: present.clone(),
        },
        services: Arc::new(FakeSystemd {
            calls: calls.clone(),
            failing: failing.iter().map(|u| u.to_string()).collect(),
            images: present,
            running: running.clone(),
            ..Default::default()
        }),
        runtime: Arc::new(FakeRuntime {
            calls: calls.clone(),
            running,
            ..Default::default()
        }),
    }
}

/// Tell the fakes what `plan` runs: which image reference each unit's container starts from, which
/// unit each probe checks (so a probe can fail for a given image id).
pub fn wire(host: &FakeHost, plan: &crate::plan::Plan) {
    for c in &plan.components {
        host.services
            .refs
            .lock()
            .unwrap()
            .insert(c.unit.clone(), c.image.clone());
        if let Some(p) = &c.probe {
            host.runtime
                .probe_units
                .lock()
                .unwrap()
                .insert(p.describe(), c.unit.clone());
        }
    }
}
