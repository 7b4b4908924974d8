//! Carry out a plan, in its order, recording every step in state.json.
//!
//! The plan's steps are exactly what runs. They are walked as *stages*: a single step (packages, a
//! directory, a file, TLS, the time zone, daemon-reload, enable), or a run of consecutive image steps
//! (fetched together, in parallel), or a run of consecutive start steps (one stage of units, queued
//! together in order). A step kind added between two runs of start steps (a bootstrap task, a health
//! probe) therefore splits the units into stages without touching this walk.
//!
//! Each stage first observes (files on disk, image ids, unit states), then decides with a pure
//! function ([`decide_unit`], [`needs_reload`]), then acts through the seams ([`Host`]): the
//! decisions are tested on in-memory fakes, the seams against real apt, podman and systemd.
//!
//! Idempotency is the point: files are compared before they are written, a running unit is
//! restarted only when its unit file, env file, mounted config, certificate or image changed, and a
//! re-run that changes nothing reloads nothing, reads no bundle, lists images at most once (not at
//! all when the image references and ids are those of the last successful run) and starts nothing.
use super::images::{ImageOptions, ImageOutcome};
use super::packages::{Family, PackageOptions};
use super::runtime::{self, Runtime};
use super::seams::{ImageStore, PackageManager, Podman, ServiceManager, SystemPackages};
use super::state::{ComponentRecord, ProbeRecord, State, StepRecord};
use super::systemd::{self, Outcome, UnitState};
use super::tls;
use super::upgrade::{self, Day2, Deferred, Run};
use crate::facts::os::PkgFamily;
use crate::fsutil::{ensure_dir, write_atomic, write_atomic_then, Written};
use crate::plan::{Plan, PlannedComponent, PlannedTask, Step};
use crate::target::Target;
use anyhow::{Context as _, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where systemd reads unit files: a changed file here means a daemon-reload.
const UNIT_DIR: &str = "/etc/systemd/system/";

#[derive(Debug, Clone)]
pub struct Options {
    /// The live host, or a tree (tests): files go under its root; units and images are the seams'.
    pub target: Target,
    pub family: PkgFamily,
    pub skip_packages: bool,
    pub image_bundle: Option<PathBuf>,
    pub images: ImageOptions,
    pub packages: PackageOptions,
    /// Longest wait for one unit to become active.
    pub start_deadline: Duration,
    /// Pause between two attempts of a health probe.
    pub probe_interval: Duration,
    pub instance_id: String,
}

/// What apply drives: packages, images, units, and what runs in the containers (tasks, probes).
/// [`Host::live`] is the real host; tests build one from the fakes in [`super::fake`].
pub struct Host<P, I, S, R> {
    pub packages: P,
    pub images: I,
    pub services: Arc<S>,
    pub runtime: Arc<R>,
}

impl Host<SystemPackages, Podman, systemd::Systemd, runtime::Live> {
    /// apt/dnf, podman and systemd on the system bus.
    pub async fn live(opts: &Options) -> Result<Self> {
        let services = systemd::Systemd::system()
            .await
            .context("connecting to systemd on the system bus")?;
        Ok(Host {
            packages: system_packages(opts),
            images: Podman(opts.images.clone()),
            services: Arc::new(services),
            runtime: Arc::new(runtime::Live),
        })
    }
}

fn system_packages(opts: &Options) -> SystemPackages {
    SystemPackages {
        family: match opts.family {
            PkgFamily::Apt => Some(Family::Apt),
            PkgFamily::Dnf => Some(Family::Dnf),
            PkgFamily::Unknown => None,
        },
        options: opts.packages.clone(),
    }
}

/// Apply the plan on the live host.
pub async fn apply(plan: &Plan, opts: &Options) -> Result<State> {
    apply_day2(plan, opts, &Day2::default()).await
}

/// Apply the plan on the live host with these upgrade and telephony-safety settings.
pub async fn apply_day2(plan: &Plan, opts: &Options, day2: &Day2) -> Result<State> {
    let host = Host::live(opts).await?;
    apply_with(plan, opts, &host, day2).await
}

/// What `omlboot bake` needs of a plan: its packages and its images, nothing host-specific.
pub async fn prepare(plan: &Plan, opts: &Options) -> Result<State> {
    prepare_on(
        plan,
        opts,
        &system_packages(opts),
        &Podman(opts.images.clone()),
    )
    .await
}

/// A group of plan steps executed together.
#[derive(Debug)]
pub enum Stage<'a> {
    One(&'a Step),
    /// Consecutive image steps: their references, fetched together.
    Images(Vec<&'a str>),
    /// Consecutive start steps: (unit, component), queued together in this order.
    Units(Vec<(&'a str, &'a str)>),
}

/// The plan's steps as stages, in order; every step is in exactly one stage.
pub fn stages(steps: &[Step]) -> Vec<Stage<'_>> {
    let mut out: Vec<Stage> = Vec::new();
    for step in steps {
        match (step, out.last_mut()) {
            (Step::Image { reference, .. }, Some(Stage::Images(refs))) => refs.push(reference),
            (Step::Image { reference, .. }, _) => out.push(Stage::Images(vec![reference])),
            (Step::Start { unit, component }, Some(Stage::Units(units))) => {
                units.push((unit, component))
            }
            (Step::Start { unit, component }, _) => out.push(Stage::Units(vec![(unit, component)])),
            (other, _) => out.push(Stage::One(other)),
        }
    }
    out
}

/// What to do with one component's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitAction {
    /// Running, and nothing it uses changed.
    Keep,
    /// Not running: start it (after reset-failed when it is failed).
    Start { reset_failed: bool },
    /// Running, and its unit file, env file, config, certificate or image changed.
    Restart,
    /// Its image is missing: it cannot start.
    ImageMissing(String),
}

/// Decide, from what was observed, what one unit needs. Pure: the engine's tests call it directly.
pub fn decide_unit(
    c: &PlannedComponent,
    observed: &UnitState,
    changed_files: &BTreeSet<String>,
    images: &ImagesResult,
) -> UnitAction {
    if let Some(reason) = images.failures.get(&c.image) {
        return UnitAction::ImageMissing(reason.clone());
    }
    let image_changed = images.before.get(&c.image) != images.after.get(&c.image);
    let files_changed = c.files.iter().any(|f| changed_files.contains(f));
    let running = matches!(
        observed.active_state.as_str(),
        "active" | "reloading" | "activating"
    );
    match (running, image_changed || files_changed) {
        (true, true) => UnitAction::Restart,
        (true, false) => UnitAction::Keep,
        (false, _) => UnitAction::Start {
            reset_failed: observed.active_state == "failed",
        },
    }
}

/// systemd must re-read unit files only when one changed, or when it does not know a unit yet.
pub fn needs_reload(changed_files: &BTreeSet<String>, observed: &[UnitState]) -> bool {
    changed_files.iter().any(|f| f.starts_with(UNIT_DIR))
        || observed.iter().any(|s| s.load_state != "loaded")
}

/// Image ids per reference before and after the images stage, and the references that could not be
/// made present (with why).
#[derive(Debug, Clone, Default)]
pub struct ImagesResult {
    pub before: BTreeMap<String, Option<String>>,
    pub after: BTreeMap<String, Option<String>>,
    pub failures: BTreeMap<String, String>,
}

/// Print one progress line on stderr: what was done, how it ended, how long it took.
fn progress(name: &str, outcome: &str, took: Duration, message: Option<&str>) {
    let extra = message.map(|m| format!(": {m}")).unwrap_or_default();
    eprintln!(
        "omlboot: {name:<48} {outcome:<9} {:>7.1}s{extra}",
        took.as_secs_f64()
    );
    tracing::info!(
        step = name,
        outcome,
        duration_ms = took.as_millis() as u64,
        "step"
    );
}

pub(crate) struct Recorder<'a> {
    pub(crate) state: State,
    pub(crate) root: &'a Path,
    /// When state.json was last written: records that change nothing on the host wait up to
    /// [`Recorder::QUIET`] for the next write.
    pub(crate) saved: Option<Instant>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(state: State, root: &'a Path) -> Self {
        Recorder {
            state,
            root,
            saved: None,
        }
    }

    /// How long an "unchanged" record may wait to be written. Every write of state.json is two
    /// fsyncs; a converged host records ~130 unchanged steps, components and probes, and writing
    /// each at once cost seconds of a no-op apply in the VM suite. What waits is only what the next
    /// run finds again by looking (a kill -9 or power cut loses nothing it needs); anything that
    /// changed the host, failed, or ran a task is written at once.
    const QUIET: std::time::Duration = std::time::Duration::from_secs(1);

    pub(crate) fn save(&mut self) -> Result<()> {
        self.saved = Some(Instant::now());
        self.state.save(self.root)
    }

    fn save_unless_quiet(&mut self, quiet: bool) -> Result<()> {
        if quiet && self.saved.is_some_and(|t| t.elapsed() < Self::QUIET) {
            return Ok(());
        }
        self.save()
    }

    pub(crate) fn step(
        &mut self,
        name: &str,
        outcome: &str,
        start: Instant,
        message: Option<String>,
    ) -> Result<()> {
        let took = start.elapsed();
        progress(name, outcome, took, message.as_deref());
        self.state.steps.push(StepRecord {
            name: name.to_string(),
            outcome: outcome.to_string(),
            duration_ms: took.as_millis() as u64,
            message,
        });
        self.save_unless_quiet(outcome == "unchanged")
    }
    pub(crate) fn component(
        &mut self,
        name: &str,
        unit: &str,
        state: &str,
        reason: Option<String>,
    ) -> Result<()> {
        self.state.components.insert(
            name.to_string(),
            ComponentRecord {
                unit: unit.to_string(),
                state: state.to_string(),
                reason,
                probe: None,
            },
        );
        // Active again after a change: the restart is no longer owed (written at once, or a kill
        // right after would cost it a second restart).
        let paid = state == "active" && self.state.restart_owed.remove(name);
        self.save_unless_quiet(state == "active" && !paid)
    }

    /// Before writing `path` with new content: the components it belongs to owe a (re)start until
    /// they are active again; recorded (fsync'd) first, so a kill after the write still owes it.
    fn owe_restart(&mut self, plan: &Plan, path: &str) -> Result<()> {
        let mut grew = false;
        for c in plan
            .components
            .iter()
            .filter(|c| c.files.iter().any(|f| f == path))
        {
            grew |= self.state.restart_owed.insert(c.name.clone());
        }
        if grew {
            self.save()?;
        }
        Ok(())
    }
    pub(crate) fn probe(&mut self, name: &str, probe: ProbeRecord) -> Result<()> {
        let passed = probe.passed;
        if let Some(c) = self.state.components.get_mut(name) {
            c.probe = Some(probe);
        }
        self.save_unless_quiet(passed)
    }
}

fn chown_root(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path)?;
    use std::os::unix::fs::MetadataExt as _;
    if meta.uid() != 0 || meta.gid() != 0 {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
        )
        .with_context(|| format!("chown root {}", path.display()))?;
    }
    Ok(())
}

/// The packages step. Returns false when it failed (recorded in the state): nothing after it can work.
async fn packages_step(
    rec: &mut Recorder<'_>,
    by_family: &BTreeMap<String, Vec<String>>,
    opts: &Options,
    packages: &impl PackageManager,
) -> Result<bool> {
    let (name, start) = ("packages", Instant::now());
    if opts.skip_packages {
        rec.step(name, "skipped", start, Some("skip_packages is set".into()))?;
        return Ok(true);
    }
    let key = match opts.family {
        PkgFamily::Apt => "apt",
        PkgFamily::Dnf => "dnf",
        PkgFamily::Unknown => "",
    };
    let names = by_family.get(key).cloned().unwrap_or_default();
    match packages.ensure(&names).await {
        Ok(o) if o.installed.is_empty() => rec.step(
            name,
            "unchanged",
            start,
            Some(format!("{} already installed", o.already.len())),
        )?,
        Ok(o) => rec.step(
            name,
            "changed",
            start,
            Some(format!("installed {}", o.installed.join(" "))),
        )?,
        Err(e) => {
            rec.state.errors.push(format!("packages: {e:#}"));
            let short = if opts.family == PkgFamily::Unknown {
                "unknown OS family".to_string()
            } else {
                format!("{e:#}")
            };
            rec.step(name, "failed", start, Some(short))?;
            return Ok(false);
        }
    }
    Ok(true)
}

/// Make every image of the stage present: nothing at all when the last successful run recorded
/// these references and every unit runs; else one listing, the bundle only when an image is missing
/// or differs from the record, pulls for what is still missing, and a second listing only if
/// anything was fetched.
async fn images_stage(
    rec: &mut Recorder<'_>,
    refs: &[&str],
    opts: &Options,
    store: &impl ImageStore,
    previous: Option<&State>,
    all_running: bool,
) -> Result<ImagesResult> {
    let start = Instant::now();
    let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
    let recorded: BTreeMap<String, Option<String>> = previous
        .filter(|p| p.status == super::state::Status::Done)
        .map(|p| {
            p.images
                .iter()
                .map(|(r, id)| (r.clone(), Some(id.clone())))
                .collect()
        })
        .unwrap_or_default();
    let same_refs = !recorded.is_empty()
        && recorded.len() == refs.len()
        && refs.iter().all(|r| recorded.contains_key(r));
    if same_refs && all_running {
        rec.step(
            "images",
            "unchanged",
            start,
            Some(format!(
                "{} images as recorded by the last run; every unit runs",
                refs.len()
            )),
        )?;
        return Ok(ImagesResult {
            before: recorded.clone(),
            after: recorded,
            failures: BTreeMap::new(),
        });
    }
    let before = store.ids(&refs).await;
    let mut missing: Vec<String> = refs
        .iter()
        .filter(|r| before.get(*r).cloned().flatten().is_none())
        .cloned()
        .collect();
    let mut outcomes = Vec::new();
    if let Some(bundle) = &opts.image_bundle {
        // The bundle is read only when something is missing or not what the last run recorded.
        if !missing.is_empty() || before != recorded {
            let loaded = store.load_bundle(bundle).await?;
            missing.retain(|r| !loaded.iter().any(|(l, o)| l == r && o.is_ok()));
            outcomes.extend(loaded);
        }
    }
    if !missing.is_empty() {
        outcomes.extend(store.pull(&missing).await);
    }
    let mut failures = BTreeMap::new();
    let mut fetched = 0;
    for (r, o) in &outcomes {
        match o {
            ImageOutcome::Failed { kind, message, .. } => {
                failures.insert(r.clone(), format!("image {r}: {kind:?}: {message}"));
            }
            ImageOutcome::Present { .. } => {}
            ImageOutcome::Pulled { .. } | ImageOutcome::Loaded { .. } => fetched += 1,
        }
    }
    let after = if fetched == 0 {
        before.clone()
    } else {
        store.ids(&refs).await
    };
    // A reference that failed to pull but was loaded from the bundle (or vice versa) is fine.
    failures.retain(|r, _| after.get(r).cloned().flatten().is_none());
    let present = refs.len() - before.values().filter(|v| v.is_none()).count();
    let summary = format!(
        "{} images: {present} already present, {fetched} pulled or loaded, {} failed",
        refs.len(),
        failures.len()
    );
    let outcome = if failures.is_empty() {
        "done"
    } else {
        "failed"
    };
    rec.step("images", outcome, start, Some(summary))?;
    Ok(ImagesResult {
        before,
        after,
        failures,
    })
}

/// Packages and images only (bake). The state is recorded like apply's (bake removes it when it
/// cleans the image).
pub async fn prepare_on(
    plan: &Plan,
    opts: &Options,
    packages: &impl PackageManager,
    images: &impl ImageStore,
) -> Result<State> {
    let root = opts.target.root();
    if let Some(b) = &opts.image_bundle {
        anyhow::ensure!(b.is_file(), "image bundle {} does not exist", b.display());
    }
    let mut rec = Recorder::new(State::new(&opts.instance_id, &plan.host.role), root);
    rec.save()?;
    for stage in stages(&plan.steps) {
        match stage {
            Stage::One(Step::Packages { by_family }) => {
                let ok = packages_step(&mut rec, by_family, opts, packages).await?;
                if !ok {
                    break;
                }
            }
            Stage::Images(refs) => {
                let result = images_stage(&mut rec, &refs, opts, images, None, false).await?;
                // No component starts during a bake, so a missing image is an error of the bake.
                rec.state.errors.extend(result.failures.into_values());
            }
            _ => {}
        }
    }
    rec.state.conclude(&[]);
    rec.save()?;
    Ok(rec.state)
}

/// Apply the plan through `host`. Returns the final state (also saved). Errors are only for
/// failures that stop everything (state cannot be written, D-Bus refuses); component failures are
/// in the state.
pub async fn apply_on<P, I, S, R>(
    plan: &Plan,
    opts: &Options,
    host: &Host<P, I, S, R>,
) -> Result<State>
where
    P: PackageManager,
    I: ImageStore,
    S: ServiceManager,
    R: Runtime,
{
    apply_with(plan, opts, host, &Day2::default()).await
}

/// [`apply_on`] with day-2 settings: the stability window of image changes, the drain timeout and
/// maintenance window of voice restarts, `--force`, and (tests) the wall clock.
pub async fn apply_with<P, I, S, R>(
    plan: &Plan,
    opts: &Options,
    host: &Host<P, I, S, R>,
    day2: &Day2,
) -> Result<State>
where
    P: PackageManager,
    I: ImageStore,
    S: ServiceManager,
    R: Runtime,
{
    let target = &opts.target;
    let root = target.root();
    // Preflight, before the first change: the operator's TLS pair must be usable.
    let mut custom_pair = None;
    for s in &plan.steps {
        if let Step::Tls {
            from: Some((cert, key)),
            ..
        } = s
        {
            custom_pair = Some(tls::read_custom(Path::new(cert), Path::new(key))?);
        }
    }
    if let Some(b) = &opts.image_bundle {
        anyhow::ensure!(b.is_file(), "image bundle {} does not exist", b.display());
    }
    let previous = State::load(root).ok().flatten();

    let mut rec = Recorder::new(State::new(&opts.instance_id, &plan.host.role), root);
    for c in &plan.components {
        rec.state.components.insert(
            c.name.clone(),
            ComponentRecord {
                unit: c.unit.clone(),
                state: "pending".into(),
                reason: None,
                probe: None,
            },
        );
    }
    // Task records outlive the run that wrote them: they say whether a task runs again.
    if let Some(p) = &previous {
        // This run holds the lock, so a state that still says running belongs to a dead run.
        rec.state.interrupted = super::state::Interrupted::of(p);
        for t in plan.tasks() {
            if let Some(r) = p.tasks.get(&t.name) {
                rec.state.tasks.insert(t.name.clone(), r.clone());
            }
        }
        // So do the images each component runs, and the previous ones kept for a rollback; and the
        // restarts a killed run owes.
        for c in &plan.components {
            if let Some(r) = p.upgrades.get(&c.name) {
                rec.state.upgrades.insert(c.name.clone(), r.clone());
            }
            if p.restart_owed.contains(&c.name) {
                rec.state.restart_owed.insert(c.name.clone());
            }
        }
    }
    let mut run = Run::new(day2, root, plan);
    let mut groups_prepared = false;
    rec.save()?;
    // Components a failed task keeps from starting: component → why.
    let mut blocked: BTreeMap<String, String> = BTreeMap::new();
    // Components kept as they were, whose probes wait until something needs them (see `Unprobed`).
    let mut unprobed = Unprobed::default();

    // A restart owed by a killed run counts as a change of the component's files: its unit file
    // was rewritten (daemon-reload), its env or config is new (restart).
    let mut changed_files: BTreeSet<String> = plan
        .components
        .iter()
        .filter(|c| rec.state.restart_owed.contains(&c.name))
        .flat_map(|c| c.files.iter().cloned())
        .collect();
    let mut images = ImagesResult::default();
    // Unit states, read once (concurrently) before the first step that needs them.
    let mut observed: Option<BTreeMap<String, UnitState>> = None;
    let all_units: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Enable { units } => Some(units.clone()),
            _ => None,
        })
        .flatten()
        .collect();

    for stage in stages(&plan.steps) {
        let start = Instant::now();
        match stage {
            Stage::One(Step::Packages { by_family }) => {
                let ok = packages_step(&mut rec, by_family, opts, &host.packages).await?;
                if !ok {
                    break;
                }
            }
            Stage::One(Step::Directory { path, mode, .. }) => {
                let p = target.path(path);
                let changed = ensure_dir(&p, *mode)?;
                chown_root(&p)?;
                let outcome = if changed { "changed" } else { "unchanged" };
                rec.step(&format!("directory {path}"), outcome, start, None)?;
            }
            Stage::One(Step::File {
                path,
                mode,
                content,
                ..
            }) => {
                let p = target.path(path);
                if let Some(parent) = p.parent() {
                    if !parent.is_dir() {
                        std::fs::create_dir_all(parent)?;
                    }
                }
                let w = write_atomic_then(&p, content, *mode, || rec.owe_restart(plan, path))?;
                chown_root(&p)?;
                let changed = w != Written::Unchanged;
                if changed {
                    changed_files.insert(path.clone());
                    if path.starts_with("/etc/sysctl.d/") && target.is_live() {
                        if let Err(e) = crate::exec::run("sysctl", &["-q", "-p", path]).await {
                            tracing::warn!("{e:#}");
                        }
                    }
                }
                let outcome = if changed { "changed" } else { "unchanged" };
                rec.step(&format!("file {path}"), outcome, start, None)?;
            }
            Stage::One(Step::Tls {
                cert, key, sans, ..
            }) => {
                let (cp, kp) = (target.path(cert), target.path(key));
                let pair = match &custom_pair {
                    Some(p) => Some(tls::Pair {
                        cert_pem: p.cert_pem.clone(),
                        key_pem: p.key_pem.clone(),
                    }),
                    None => {
                        let kept = std::fs::read_to_string(&cp)
                            .ok()
                            .filter(|c| tls::covers(c, sans))
                            .is_some()
                            && kp.is_file();
                        if kept {
                            None
                        } else {
                            Some(tls::self_signed(sans)?)
                        }
                    }
                };
                let mut outcome = "unchanged";
                if let Some(p) = pair {
                    rec.owe_restart(plan, cert)?;
                    let a = write_atomic(&kp, p.key_pem.as_bytes(), 0o600)?;
                    let b = write_atomic(&cp, p.cert_pem.as_bytes(), 0o644)?;
                    if a != Written::Unchanged || b != Written::Unchanged {
                        outcome = "changed";
                        changed_files.insert(cert.clone());
                    }
                }
                rec.step(&format!("tls {cert}"), outcome, start, None)?;
            }
            Stage::One(Step::Timezone { tz }) => {
                let name = format!("timezone {tz}");
                let current = std::fs::read_link(target.path("/etc/localtime"))
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if current.ends_with(&format!("zoneinfo/{tz}")) || !target.is_live() {
                    rec.step(&name, "unchanged", start, None)?;
                } else {
                    match crate::exec::run("timedatectl", &["set-timezone", tz]).await {
                        Ok(()) => rec.step(&name, "changed", start, None)?,
                        Err(e) => rec.step(&name, "failed", start, Some(format!("{e:#}")))?,
                    }
                }
            }
            Stage::Images(refs) => {
                let states = observe(&mut observed, &*host.services, &all_units).await?;
                let all_running = plan.components.iter().all(|c| {
                    states
                        .get(&c.unit)
                        .is_some_and(|s| s.active_state == "active")
                });
                images = images_stage(
                    &mut rec,
                    &refs,
                    opts,
                    &host.images,
                    previous.as_ref(),
                    all_running,
                )
                .await?;
                // Every new image is present, nothing restarted yet: find the image changes, keep
                // the previous images, dump the database.
                if !groups_prepared {
                    groups_prepared = true;
                    upgrade::prepare_groups(
                        &mut run,
                        &mut rec,
                        plan,
                        &images.after,
                        previous.as_ref(),
                        host,
                        opts,
                    )
                    .await?;
                }
            }
            Stage::One(Step::DaemonReload) => {
                let states = observe(&mut observed, &*host.services, &all_units).await?;
                let list: Vec<UnitState> = states.values().cloned().collect();
                if needs_reload(&changed_files, &list) {
                    host.services.daemon_reload().await?;
                    rec.step("systemd daemon-reload", "done", start, None)?;
                } else {
                    let why = "no unit file changed".to_string();
                    rec.step("systemd daemon-reload", "unchanged", start, Some(why))?;
                }
            }
            Stage::One(Step::Enable { units }) => {
                let states = observe(&mut observed, &*host.services, &all_units).await?;
                let name = format!("enable {} units", units.len());
                let all_enabled = units.iter().all(|u| {
                    states
                        .get(u)
                        .is_some_and(|s| s.unit_file_state == "enabled")
                });
                let unit_file_changed = changed_files.iter().any(|f| f.starts_with(UNIT_DIR));
                if all_enabled && !unit_file_changed {
                    rec.step(&name, "unchanged", start, None)?;
                } else {
                    let changes = host.services.enable(units).await?;
                    let outcome = if changes.is_empty() {
                        "unchanged"
                    } else {
                        "changed"
                    };
                    rec.step(&name, outcome, start, None)?;
                }
                // Units enabled for a component but not components (podman.socket) start here.
                for hu in units
                    .iter()
                    .filter(|u| !plan.components.iter().any(|c| &c.unit == *u))
                {
                    if states.get(hu).is_some_and(|s| s.active_state == "active") {
                        continue;
                    }
                    let (tx, _rx) = tokio::sync::oneshot::channel();
                    let _ = host
                        .services
                        .start(hu, false, opts.start_deadline, tx)
                        .await;
                }
            }
            Stage::Units(units) => {
                let states = observe(&mut observed, &*host.services, &all_units)
                    .await?
                    .clone();
                units_stage(
                    &mut rec,
                    &mut run,
                    plan,
                    &units,
                    &states,
                    &changed_files,
                    &images,
                    &blocked,
                    &mut unprobed,
                    host,
                    opts,
                )
                .await?;
            }
            Stage::One(Step::Task(task)) => {
                if task_would_run(task, &rec, &images) {
                    unprobed.flush(&mut rec, plan, host, opts).await?;
                }
                task_step(&mut rec, task, &images, &mut blocked, host).await?;
            }
            Stage::One(Step::Image { .. } | Step::Start { .. }) => {
                unreachable!("image and start steps are grouped into stages")
            }
        }
    }
    unprobed.flush(&mut rec, plan, host, opts).await?;
    // Voice restarts that waited for their calls to end, or for the maintenance window.
    upgrade::finish_deferred(&mut run, &mut rec, plan, host, opts).await?;
    rec.state.images = images
        .after
        .iter()
        .filter_map(|(r, id)| id.clone().map(|id| (r.clone(), id)))
        .collect();
    for (r, id) in &run.image_overrides {
        rec.state.images.insert(r.clone(), id.clone());
    }
    let settled = rec.state.images.clone();
    upgrade::record_settled(&mut rec, plan, &settled);
    rec.state.notices = plan
        .tasks()
        .filter(|t| {
            rec.state
                .tasks
                .get(&t.name)
                .is_some_and(|r| r.successes > 0)
        })
        .filter_map(|t| t.notice.clone())
        .collect();
    rec.state.conclude(&plan.optional_components());
    // Rolled back and healthy on the previous version: degraded (exit 3), not done.
    let on_previous = plan.components.iter().any(|c| {
        rec.state
            .upgrades
            .get(&c.name)
            .is_some_and(|r| r.outcome == "rolled back" && r.reference == c.image)
    });
    if (run.rolled_back || on_previous) && rec.state.status == super::state::Status::Done {
        rec.state.status = super::state::Status::Degraded;
    }
    rec.save()?;
    Ok(rec.state)
}

/// One bootstrap task: blocked when a component it needs is not healthy, skipped when its record
/// says it is not needed (see [`super::tasks::decide_task`]), else run; when it does not succeed the
/// components it must precede are blocked.
async fn task_step<P, I, S, R: Runtime>(
    rec: &mut Recorder<'_>,
    task: &PlannedTask,
    images: &ImagesResult,
    blocked: &mut BTreeMap<String, String>,
    host: &Host<P, I, S, R>,
) -> Result<()> {
    let start = Instant::now();
    let name = format!("task {}", task.name);
    let unhealthy = task.after.iter().find(|c| {
        rec.state.components.get(*c).is_none_or(|r| {
            r.state == "failed"
                || r.state == "pending"
                || r.probe.as_ref().is_some_and(|p| !p.passed)
        })
    });
    let image_id = task
        .action
        .image()
        .and_then(|i| images.after.get(i).cloned().flatten());
    let failure = if let Some(c) = unhealthy {
        let why = format!("{c} is not healthy");
        let record = rec.state.tasks.entry(task.name.clone()).or_default();
        record.outcome = "blocked".into();
        record.at_unix = super::state::now_unix();
        record.output_tail = why.clone();
        rec.step(&name, "blocked", start, Some(why.clone()))?;
        Some(format!("task {} did not run: {why}", task.name))
    } else if let Some(action) = task
        .action
        .image()
        .filter(|i| images.failures.contains_key(*i))
    {
        let why = format!("image {action} is missing");
        rec.step(&name, "failed", start, Some(why.clone()))?;
        Some(format!("task {}: {why}", task.name))
    } else {
        let previous = rec.state.tasks.get(&task.name);
        match super::tasks::decide_task(task, previous, image_id.as_deref()) {
            None => {
                if let Some(r) = rec.state.tasks.get_mut(&task.name) {
                    r.outcome = "skipped".into();
                }
                rec.step(&name, "unchanged", start, Some("not needed".into()))?;
                None
            }
            Some(reason) => {
                tracing::info!(task = task.name, reason, "running task");
                let (record, run) =
                    super::tasks::run_task(&*host.runtime, task, previous, image_id.as_deref())
                        .await;
                let tail = record.output_tail.clone();
                let exit = record.exit_status;
                rec.state.tasks.insert(task.name.clone(), record);
                if run.ok {
                    rec.step(&name, "done", start, Some(reason.to_string()))?;
                    None
                } else {
                    let why = format!(
                        "{}{}: {}",
                        task.description,
                        exit.map(|e| format!(" (exit status {e})"))
                            .unwrap_or_default(),
                        tail.lines().last().unwrap_or("")
                    );
                    rec.state.errors.push(format!("task {}: {why}", task.name));
                    rec.step(&name, "failed", start, Some(why.clone()))?;
                    Some(format!("task {} failed: {why}", task.name))
                }
            }
        }
    };
    if let Some(why) = failure {
        for c in &task.before {
            blocked.entry(c.clone()).or_insert_with(|| why.clone());
        }
    }
    rec.save()
}

/// Read every unit's state once; later stages reuse it (decisions are about the host as it was).
async fn observe<'a, S: ServiceManager>(
    cache: &'a mut Option<BTreeMap<String, UnitState>>,
    services: &S,
    units: &[String],
) -> Result<&'a BTreeMap<String, UnitState>> {
    if cache.is_none() {
        let states = services.states(units).await?;
        *cache = Some(states.into_iter().map(|s| (s.unit.clone(), s)).collect());
    }
    Ok(cache.as_ref().expect("just filled"))
}

/// One stage of units: decide each, then run the starts and restarts together, queued one after
/// another in plan order so systemd's After= ordering holds between them; independent units then
/// start in parallel, as at boot.
#[allow(clippy::too_many_arguments)]
async fn units_stage<P, I: ImageStore, S: ServiceManager, R: Runtime>(
    rec: &mut Recorder<'_>,
    run: &mut Run<'_>,
    plan: &Plan,
    units: &[(&str, &str)],
    states: &BTreeMap<String, UnitState>,
    changed_files: &BTreeSet<String>,
    images: &ImagesResult,
    blocked: &BTreeMap<String, String>,
    unprobed: &mut Unprobed,
    host: &Host<P, I, S, R>,
    opts: &Options,
) -> Result<()> {
    let mut jobs: Vec<(&PlannedComponent, &'static str, bool)> = Vec::new();
    // Image changes of this stage, by reference, members in plan order; and those a failed task blocks.
    let mut groups: Vec<(String, Vec<&PlannedComponent>)> = Vec::new();
    let mut blocked = blocked.clone();
    let settled = rollback_blocked_groups(rec, run, plan, units, &mut blocked, host, opts).await?;
    for (unit, component) in units {
        if settled.contains(*component) {
            continue;
        }
        let start = Instant::now();
        let name = format!("unit {unit}");
        let Some(c) = plan.components.iter().find(|c| c.name == *component) else {
            anyhow::bail!("plan: start step for {unit} names no component {component}");
        };
        let unknown = UnitState {
            unit: unit.to_string(),
            load_state: "not-found".into(),
            active_state: "inactive".into(),
            sub_state: String::new(),
            result: String::new(),
            n_restarts: 0,
            exec_main_status: 0,
            active_enter_timestamp: 0,
            unit_file_state: String::new(),
            service_type: String::new(),
        };
        let observed = states.get(*unit).unwrap_or(&unknown);
        if run.group_of(c).is_some() {
            match groups.iter_mut().find(|(r, _)| *r == c.image) {
                Some((_, members)) => members.push(c),
                None => groups.push((c.image.clone(), vec![c])),
            }
            continue;
        }
        let mut action = decide_unit(c, observed, changed_files, images);
        // A restart an earlier run put off (calls, window) is still owed, though nothing changes now.
        let owed = rec
            .state
            .upgrades
            .get(&c.name)
            .is_some_and(|r| r.outcome == "not restarted" || upgrade::waiting(r));
        if owed && action == UnitAction::Keep {
            action = UnitAction::Restart;
        }
        match action {
            UnitAction::ImageMissing(reason) => {
                rec.component(&c.name, &c.unit, "failed", Some(reason.clone()))?;
                rec.step(&name, "failed", start, Some(reason))?;
            }
            // A task it needs failed: left as it is (a running unit keeps running), not started.
            _ if blocked.contains_key(&c.name) => {
                let why = blocked[&c.name].clone();
                rec.component(&c.name, &c.unit, "failed", Some(why.clone()))?;
                rec.step(&name, "blocked", start, Some(why))?;
            }
            UnitAction::Keep => {
                rec.component(&c.name, &c.unit, "active", None)?;
                rec.step(&name, "unchanged", start, None)?;
            }
            UnitAction::Restart if c.calls.is_some() => {
                let since = run.clock.now_unix();
                let deferred = Deferred::Restart {
                    component: c.name.clone(),
                    since_unix: since,
                };
                match upgrade::voice_gate(run, rec, &[c], deferred, host).await? {
                    Some(why) => {
                        if let Some(why) = why {
                            let r = rec.state.upgrades.entry(c.name.clone()).or_default();
                            r.outcome = "restarted".into();
                            r.reason = Some(why);
                            r.at_unix = super::state::now_unix();
                        }
                        jobs.push((c, "restarted", true))
                    }
                    None => continue,
                }
            }
            UnitAction::Restart => jobs.push((c, "restarted", true)),
            UnitAction::Start { reset_failed } => {
                if reset_failed {
                    let _ = host.services.reset_failed(&c.unit).await;
                }
                jobs.push((c, "started", false));
            }
        }
    }

    let names: Vec<String> = units.iter().map(|(_, c)| c.to_string()).collect();
    if jobs.is_empty() && groups.is_empty() {
        // Nothing starts here: this stage's probes can wait with the others.
        unprobed.defer(names);
        return Ok(());
    }
    // What starts now needs what came before it probed first, as on a first boot.
    unprobed.flush(rec, plan, host, opts).await?;
    let mut running = tokio::task::JoinSet::new();
    let mut previous: Option<tokio::sync::oneshot::Receiver<()>> = None;
    for (i, (c, action, restart)) in jobs.iter().enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let wait_for = previous.replace(rx);
        let services = Arc::clone(&host.services);
        let unit = c.unit.clone();
        let (deadline, restart, action) = (opts.start_deadline, *restart, *action);
        running.spawn(async move {
            if let Some(prev) = wait_for {
                let _ = prev.await;
            }
            let start = Instant::now();
            let result = services.start(&unit, restart, deadline, tx).await;
            (i, action, start, result)
        });
    }
    while let Some(joined) = running.join_next().await {
        let (i, action, start, result) = joined.context("a unit start task panicked")?;
        let c = jobs[i].0;
        let name = format!("unit {}", c.unit);
        match result {
            Ok(Outcome::Active(_)) => {
                rec.component(&c.name, &c.unit, "active", None)?;
                rec.step(&name, action, start, None)?;
            }
            Ok(Outcome::Failed {
                job_result,
                state,
                journal,
            }) => {
                let tail: Vec<&str> = journal
                    .iter()
                    .skip(journal.len().saturating_sub(5))
                    .map(String::as_str)
                    .collect();
                let reason = format!(
                    "job {job_result}, {}/{} result={} exit-status={}; journal: {}",
                    state.active_state,
                    state.sub_state,
                    state.result,
                    state.exec_main_status,
                    tail.join(" | ")
                );
                rec.component(&c.name, &c.unit, "failed", Some(reason.clone()))?;
                rec.step(&name, "failed", start, Some(reason))?;
            }
            Err(e) => {
                rec.component(&c.name, &c.unit, "failed", Some(format!("{e:#}")))?;
                rec.step(&name, "failed", start, Some(format!("{e:#}")))?;
            }
        }
    }
    // Each image change of the stage through its gate, one group after another; then the probes of
    // the rest of the stage, which may need the groups' members (nginx needs omlapp): probed before a
    // gate, they would judge an image the gate is about to replace or roll back.
    let gated: BTreeSet<String> = groups
        .iter()
        .flat_map(|(_, members)| members.iter().map(|c| c.name.clone()))
        .collect();
    for (reference, members) in groups {
        // A run killed while rolling this group back: finish the rollback.
        if let Some(g) = run
            .groups
            .get(&reference)
            .filter(|g| g.step == upgrade::JStep::RollingBack)
        {
            let why = g
                .reason
                .clone()
                .unwrap_or_else(|| "interrupted rollback".into());
            upgrade::rollback_group(run, rec, &reference, &members, &why, true, host, opts).await?;
            continue;
        }
        let since = run.clock.now_unix();
        let deferred = Deferred::Group {
            reference: reference.clone(),
            since_unix: since,
        };
        if let Some(why) = upgrade::voice_gate(run, rec, &members, deferred, host).await? {
            upgrade::upgrade_group(run, rec, &reference, &members, host, opts).await?;
            if let Some(why) = why {
                upgrade::note(rec, &members, &why);
            }
        }
    }
    let rest: Vec<String> = names.into_iter().filter(|n| !gated.contains(n)).collect();
    probe_stage(rec, plan, &rest, host, opts).await
}

/// An image change whose bootstrap task failed on the new image (omlapp's migrations): its units never
/// left the previous image, so the group goes back to it (tag, dump restored, probes) before the
/// stage runs; the task is recorded as rolled back and what it blocked runs on as it was. Returns the
/// components settled so.
#[allow(clippy::too_many_arguments)]
async fn rollback_blocked_groups<P, I: ImageStore, S: ServiceManager, R: Runtime>(
    rec: &mut Recorder<'_>,
    run: &mut Run<'_>,
    plan: &Plan,
    units: &[(&str, &str)],
    blocked: &mut BTreeMap<String, String>,
    host: &Host<P, I, S, R>,
    opts: &Options,
) -> Result<BTreeSet<String>> {
    let mut settled = BTreeSet::new();
    let mut by_ref: Vec<(String, String)> = Vec::new();
    for (_, component) in units {
        let Some(c) = plan.components.iter().find(|c| c.name == *component) else {
            continue;
        };
        if let (Some(_), Some(why)) = (run.group_of(c), blocked.get(&c.name)) {
            if !by_ref.iter().any(|(r, _)| *r == c.image) {
                by_ref.push((c.image.clone(), why.clone()));
            }
        }
    }
    for (reference, why) in by_ref {
        let members: Vec<&PlannedComponent> = units
            .iter()
            .filter_map(|(_, n)| plan.components.iter().find(|c| c.name == *n))
            .filter(|c| c.image == reference)
            .collect();
        upgrade::rollback_group(run, rec, &reference, &members, &why, false, host, opts).await?;
        let back = members.iter().all(|c| {
            rec.state
                .upgrades
                .get(&c.name)
                .is_some_and(|r| r.outcome == "rolled back")
        });
        settled.extend(members.iter().map(|c| c.name.clone()));
        if !back {
            continue;
        }
        for t in plan.tasks() {
            let ran_new = t.action.image() == Some(reference.as_str());
            let failed = rec
                .state
                .tasks
                .get(&t.name)
                .is_some_and(|r| r.outcome == "failed" || r.outcome == "blocked");
            if !(ran_new && failed) {
                continue;
            }
            if let Some(r) = rec.state.tasks.get_mut(&t.name) {
                r.outcome = "rolled back".into();
            }
            let prefix = format!("task {}:", t.name);
            rec.state.errors.retain(|e| !e.starts_with(&prefix));
            for c in &t.before {
                if blocked.get(c).is_some_and(|w| w.contains(&t.name)) {
                    blocked.remove(c);
                }
            }
        }
    }
    rec.save()?;
    Ok(settled)
}

/// Probe every component of the stage whose unit is active, concurrently, each until it passes or
/// its deadline: "active" is systemd's word, the probe is the component's.
async fn probe_stage<P, I, S, R: Runtime>(
    rec: &mut Recorder<'_>,
    plan: &Plan,
    components: &[String],
    host: &Host<P, I, S, R>,
    opts: &Options,
) -> Result<()> {
    let mut probing = tokio::task::JoinSet::new();
    for component in components {
        let Some(c) = plan.components.iter().find(|c| &c.name == component) else {
            continue;
        };
        let (Some(probe), Some(record)) = (&c.probe, rec.state.components.get(&c.name)) else {
            continue;
        };
        if record.state != "active" {
            continue;
        }
        let (runtime, probe, name) = (Arc::clone(&host.runtime), probe.clone(), c.name.clone());
        let pause = opts.probe_interval;
        probing.spawn(async move {
            let start = Instant::now();
            let result = super::tasks::probe_until(&*runtime, &probe, pause).await;
            (name, start, result)
        });
    }
    while let Some(joined) = probing.join_next().await {
        let (name, start, result) = joined.context("a probe task panicked")?;
        let outcome = if result.passed { "passed" } else { "failed" };
        let detail = result.detail.clone();
        rec.probe(&name, result)?;
        rec.step(&format!("probe {name}"), outcome, start, Some(detail))?;
    }
    Ok(())
}

/// Components a run kept as they were (active, nothing of theirs changed), not probed yet.
///
/// A converged host starts nothing, so probing stage by stage would only add up the slowest probe of
/// every stage (a `podman exec` takes seconds under emulation). Their probes still run, all together:
/// before anything starts or a task runs (those need their peers probed first, as on a first boot),
/// and at the latest when the run ends, so a broken component still fails a run that changed nothing.
#[derive(Default)]
struct Unprobed(Vec<String>);

impl Unprobed {
    fn defer(&mut self, components: Vec<String>) {
        self.0.extend(components);
    }

    async fn flush<P, I, S, R: Runtime>(
        &mut self,
        rec: &mut Recorder<'_>,
        plan: &Plan,
        host: &Host<P, I, S, R>,
        opts: &Options,
    ) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let components = std::mem::take(&mut self.0);
        probe_stage(rec, plan, &components, host, opts).await
    }
}

/// Whether [`task_step`] would run the task's container, from the same records it reads.
fn task_would_run(task: &PlannedTask, rec: &Recorder<'_>, images: &ImagesResult) -> bool {
    let image_id = task
        .action
        .image()
        .and_then(|i| images.after.get(i).cloned().flatten());
    super::tasks::decide_task(task, rec.state.tasks.get(&task.name), image_id.as_deref()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_records_wait_for_the_next_write_what_changed_is_written_at_once() {
        let root = tempfile::tempdir().unwrap();
        let path = State::path(root.path());
        let mut rec = Recorder::new(State::new("i-1", "aio"), root.path());
        rec.step("file /etc/a", "unchanged", Instant::now(), None)
            .unwrap();
        assert!(path.is_file(), "the first record is written");
        std::fs::remove_file(&path).unwrap();
        rec.step("file /etc/b", "unchanged", Instant::now(), None)
            .unwrap();
        rec.component("redis", "redis.service", "active", None)
            .unwrap();
        assert!(!path.exists(), "unchanged records wait");
        rec.step("file /etc/c", "changed", Instant::now(), None)
            .unwrap();
        let written = State::load(root.path()).unwrap().unwrap();
        let names: Vec<&str> = written.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["file /etc/a", "file /etc/b", "file /etc/c"]);
        assert_eq!(written.components["redis"].state, "active");
        std::fs::remove_file(&path).unwrap();
        rec.component("nginx", "nginx.service", "failed", Some("x".into()))
            .unwrap();
        assert!(path.is_file(), "a failure is written at once");
    }
}
