//! Image changes with a health gate, automatic rollback of the component alone, the upgrade journal,
//! and voice restarts that wait for calls to end.
//!
//! An image change of a component is an *upgrade group*: every component of the host running that
//! image reference (omlapp's omnileads, daphne and omlcron share one). The engine finds groups after
//! the images stage (every new image is present by then, nothing restarted yet) by comparing the id
//! the component was last confirmed healthy on (state `upgrades`) with the id its reference names
//! now. Per group, each step is first written to the journal (`/var/lib/omlboot/upgrade.json`,
//! fsync'd): pulled, previous tagged (`localhost/omlboot-previous/<component>:<id>`, so a prune
//! keeps it), dump taken (omlapp: `pg_dump -Fc`), restarting, probing, then upgraded — or rolling
//! back (the previous id tagged back to the reference the unit runs, the dump restored, restart,
//! probe) and rolled back. A run killed at any step leaves the group in flight in the journal; the
//! next `apply` or `upgrade` takes it through the gate again from the recorded previous id, so each
//! component ends on exactly the old or the new image, healthy.
use super::drain::{self, Decision, Waiting, Window};
use super::engine::{Host, Options, Recorder};
use super::runtime::Runtime;
use super::seams::{ImageStore, ServiceManager};
use super::state::{now_unix, ProbeRecord, State, UpgradeRecord};
use super::systemd::Outcome;
use crate::plan::{Plan, PlannedComponent};
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

pub const JOURNAL_PATH: &str = "var/lib/omlboot/upgrade.json";
/// Where database dumps taken before an omlapp upgrade go (on the host).
pub const DUMP_DIR: &str = "/var/lib/omlboot/upgrade";

/// The day-2 settings of a run.
#[derive(Debug, Clone)]
pub struct Day2 {
    /// How long a changed component's probe must keep passing, NRestarts unchanged.
    pub stability_window: Duration,
    /// Longest wait for a voice component to carry no call.
    pub drain_timeout: Duration,
    pub window: Option<Window>,
    /// Restart voice components at once, calls or not.
    pub force: bool,
    /// Pause between two call counts.
    pub drain_poll: Duration,
    /// The wall clock (unix s) at the start of the run; `None`: now. Tests fix it and run on tokio's
    /// paused clock, so weekdays and hours are simulated.
    pub clock_start_unix: Option<u64>,
    /// Tests: stop the run (an error) right after this journal step is written, as a `kill -9`
    /// there would leave the host.
    pub kill_after: Option<JStep>,
}

impl Default for Day2 {
    fn default() -> Day2 {
        Day2 {
            stability_window: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(900),
            window: None,
            force: false,
            drain_poll: Duration::from_secs(5),
            clock_start_unix: None,
            kill_after: None,
        }
    }
}

/// Wall clock that follows tokio's (paused in tests).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix: u64,
}

impl Clock {
    pub fn new(start_unix: Option<u64>) -> Clock {
        Clock {
            start: Instant::now(),
            start_unix: start_unix.unwrap_or_else(now_unix),
        }
    }
    pub fn now_unix(&self) -> u64 {
        self.start_unix + self.start.elapsed().as_secs()
    }
}

/// Where a group is. Each is written before the step it names is taken (or once it is reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JStep {
    /// Every new image is present; nothing restarted.
    Pulled,
    /// The previous image carries its keep-tag.
    PreviousTagged,
    /// The database dump is on disk (omlapp).
    DumpTaken,
    /// Its units are being restarted on the new image.
    Restarting,
    /// Restarted; probe and stability window running.
    Probing,
    /// The gate failed: putting the previous image back.
    RollingBack,
    RolledBack,
    Upgraded,
}

impl JStep {
    pub fn finished(self) -> bool {
        matches!(self, JStep::RolledBack | JStep::Upgraded)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JGroup {
    /// Components running this reference.
    pub components: Vec<String>,
    pub previous_id: String,
    pub new_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
    pub step: JStep,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JEntry {
    pub at_unix: u64,
    pub reference: String,
    pub step: JStep,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// /var/lib/omlboot/upgrade.json: the groups of the last upgrade, by reference, and every step in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Journal {
    pub started_unix: u64,
    /// Every group finished (upgraded or rolled back).
    pub done: bool,
    pub groups: BTreeMap<String, JGroup>,
    pub entries: Vec<JEntry>,
}

impl Journal {
    pub fn path(root: &Path) -> PathBuf {
        root.join(JOURNAL_PATH)
    }
    pub fn load(root: &Path) -> Result<Option<Journal>> {
        crate::fsutil::read_json(&Self::path(root))
    }
    /// Written atomically and fsync'd (temp file, fsync, rename, fsync dir).
    pub fn save(&self, root: &Path) -> Result<()> {
        crate::fsutil::write_json(&Self::path(root), self)
    }
    /// Record `step` for the group of `reference` (entry + group state), then save.
    pub fn step(
        &mut self,
        root: &Path,
        reference: &str,
        step: JStep,
        detail: Option<String>,
    ) -> Result<()> {
        if let Some(g) = self.groups.get_mut(reference) {
            g.step = step;
            if detail.is_some() && matches!(step, JStep::RollingBack | JStep::RolledBack) {
                g.reason = detail.clone();
            }
        }
        self.entries.push(JEntry {
            at_unix: now_unix(),
            reference: reference.to_string(),
            step,
            detail,
        });
        self.done = self.groups.values().all(|g| g.step.finished());
        self.save(root)
    }
    /// Groups not finished: a run was killed in the middle of them.
    pub fn in_flight(&self) -> impl Iterator<Item = (&String, &JGroup)> {
        self.groups.iter().filter(|(_, g)| !g.step.finished())
    }
}

/// The keep-tag of a previous image.
pub fn previous_tag(component: &str, id: &str) -> String {
    let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
    format!("localhost/omlboot-previous/{component}:{short}")
}

/// A voice restart put off until its calls end (or the window opens).
#[derive(Debug, Clone)]
pub enum Deferred {
    /// A restart for a new env, config or unit file.
    Restart { component: String, since_unix: u64 },
    /// An upgrade group.
    Group { reference: String, since_unix: u64 },
}

/// What one run of the engine carries for day-2: the journal, this run's groups, what waits.
pub struct Run<'a> {
    pub day2: &'a Day2,
    pub clock: Clock,
    pub journal: Journal,
    /// Reference → its group (those of this run and those resumed).
    pub groups: BTreeMap<String, JGroup>,
    pub deferred: Vec<Deferred>,
    /// Reference → the image id it names after a rollback.
    pub image_overrides: BTreeMap<String, String>,
    /// A group was rolled back this run.
    pub rolled_back: bool,
    /// Tasks whose whole effect a database dump undoes (container tasks without volumes).
    pub dump_undoes: BTreeSet<String>,
}

impl<'a> Run<'a> {
    pub fn new(day2: &'a Day2, root: &Path, plan: &Plan) -> Run<'a> {
        Run {
            dump_undoes: plan
                .tasks()
                .filter(|t| t.action.mounts_nothing())
                .map(|t| t.name.clone())
                .collect(),
            day2,
            clock: Clock::new(day2.clock_start_unix),
            journal: Journal::load(root).ok().flatten().unwrap_or_default(),
            groups: BTreeMap::new(),
            deferred: Vec::new(),
            image_overrides: BTreeMap::new(),
            rolled_back: false,
        }
    }

    /// Journal `step` for the group of `reference` (fsync'd) before taking it.
    pub fn jstep(
        &mut self,
        root: &Path,
        reference: &str,
        step: JStep,
        detail: Option<String>,
    ) -> Result<()> {
        self.journal.step(root, reference, step, detail)?;
        if self.day2.kill_after == Some(step) {
            anyhow::bail!("killed right after journal step {step:?} of {reference} (test)");
        }
        Ok(())
    }

    /// The group a component belongs to, if its image changes this run.
    pub fn group_of(&self, c: &PlannedComponent) -> Option<&JGroup> {
        self.groups
            .get(&c.image)
            .filter(|g| !g.step.finished() && g.components.contains(&c.name))
    }

    fn decide(&self, calls: Result<u64, String>, since_unix: u64) -> Decision {
        drain::decide(&drain::Input {
            now_unix: self.clock.now_unix(),
            since_unix,
            calls,
            window: self.day2.window.as_ref(),
            drain_timeout_s: self.day2.drain_timeout.as_secs(),
            force: self.day2.force,
        })
    }
}

/// After the images stage: the groups of this run (image ids that differ from what each component
/// was last confirmed on, and groups a killed run left in flight), their previous images tagged and
/// the database dumped, each step journaled first.
pub(crate) async fn prepare_groups<P, I: ImageStore, S, R: Runtime>(
    run: &mut Run<'_>,
    rec: &mut Recorder<'_>,
    plan: &Plan,
    after: &BTreeMap<String, Option<String>>,
    previous: Option<&State>,
    host: &Host<P, I, S, R>,
    opts: &Options,
) -> Result<()> {
    let root = rec.root;
    // Groups a killed run left in flight go through the gate again.
    let resumed: Vec<(String, JGroup)> = run
        .journal
        .in_flight()
        .map(|(r, g)| (r.clone(), g.clone()))
        .collect();
    for (reference, mut g) in resumed {
        if plan.components.iter().any(|c| c.image == reference) {
            if let Some(Some(now)) = after.get(&reference) {
                if g.step < JStep::RollingBack && *now != g.previous_id {
                    g.new_id = now.clone();
                }
            }
            eprintln!(
                "omlboot: resuming the upgrade of {reference} left at {:?} by an interrupted run",
                g.step
            );
            run.groups.insert(reference, g);
        }
    }
    let mut fresh: BTreeMap<String, JGroup> = BTreeMap::new();
    for c in &plan.components {
        let Some(Some(new_id)) = after.get(&c.image) else {
            continue;
        };
        if run.groups.contains_key(&c.image) {
            continue;
        }
        let Some(record) = previous.and_then(|p| p.upgrades.get(&c.name)) else {
            continue;
        };
        if record.image_id.is_empty() || &record.image_id == new_id {
            continue;
        }
        // Killed after its gate passed, before the state said so: it is upgraded.
        if run
            .journal
            .groups
            .get(&c.image)
            .is_some_and(|g| g.step == JStep::Upgraded && &g.new_id == new_id)
        {
            continue;
        }
        let g = fresh.entry(c.image.clone()).or_insert_with(|| JGroup {
            components: Vec::new(),
            previous_id: record.image_id.clone(),
            new_id: new_id.clone(),
            previous_tag: None,
            dump: None,
            step: JStep::Pulled,
            reason: None,
        });
        g.components.push(c.name.clone());
    }
    if fresh.is_empty() && run.groups.is_empty() {
        return Ok(());
    }
    if !fresh.is_empty() {
        if run.journal.done || run.journal.groups.is_empty() {
            run.journal = Journal {
                started_unix: now_unix(),
                ..Default::default()
            };
        }
        for (reference, g) in &fresh {
            run.journal.groups.insert(reference.clone(), g.clone());
            let detail = format!(
                "{} {} → {}",
                g.components.join(","),
                short(&g.previous_id),
                short(&g.new_id)
            );
            run.jstep(root, reference, JStep::Pulled, Some(detail))?;
        }
        run.groups.extend(fresh);
    }
    let has_db = plan.components.iter().any(|c| c.name == "postgresql");
    let references: Vec<String> = run.groups.keys().cloned().collect();
    for reference in references {
        let g = run.groups[&reference].clone();
        let start = std::time::Instant::now();
        if g.step < JStep::PreviousTagged {
            let tag = previous_tag(&g.components[0], &g.previous_id);
            match host.images.tag(&g.previous_id, &tag).await {
                Ok(()) => {
                    set_group(run, &reference, |g| g.previous_tag = Some(tag.clone()));
                    run.jstep(root, &reference, JStep::PreviousTagged, Some(tag.clone()))?;
                    rec.step(
                        &format!("keep previous {reference}"),
                        "done",
                        start,
                        Some(tag),
                    )?;
                }
                Err(e) => {
                    // Without its previous image the group cannot roll back: it still upgrades, and says so.
                    rec.step(
                        &format!("keep previous {reference}"),
                        "failed",
                        start,
                        Some(format!("{e:#}")),
                    )?;
                    run.jstep(
                        root,
                        &reference,
                        JStep::PreviousTagged,
                        Some(format!("not kept: {e:#}")),
                    )?;
                }
            }
        }
        let wants_dump = g.components.iter().any(|n| {
            plan.components
                .iter()
                .any(|c| &c.name == n && c.dump_before_upgrade)
        });
        let g = run.groups[&reference].clone();
        if wants_dump && has_db && g.step < JStep::DumpTaken {
            let start = std::time::Instant::now();
            let dump = format!("{DUMP_DIR}/{}.dump", run.clock.now_unix());
            let path = opts.target.path(&dump);
            if let Some(dir) = path.parent() {
                crate::fsutil::ensure_dir(dir, 0o700)?;
            }
            match host.runtime.dump_database(&path).await {
                Ok(()) => {
                    set_group(run, &reference, |g| g.dump = Some(dump.clone()));
                    run.journal
                        .groups
                        .insert(reference.clone(), run.groups[&reference].clone());
                    run.jstep(root, &reference, JStep::DumpTaken, Some(dump.clone()))?;
                    rec.step("database dump", "done", start, Some(dump))?;
                }
                Err(e) => {
                    // No dump, no upgrade: the previous image goes back under the reference.
                    let why = format!("database dump before the upgrade failed: {e}");
                    rec.step("database dump", "failed", start, Some(why.clone()))?;
                    run.jstep(root, &reference, JStep::RollingBack, Some(why.clone()))?;
                    host.images.tag(&g.previous_id, &reference).await?;
                    run.image_overrides
                        .insert(reference.clone(), g.previous_id.clone());
                    run.jstep(root, &reference, JStep::RolledBack, Some(why.clone()))?;
                    run.rolled_back = true;
                    for name in &g.components {
                        record(
                            rec,
                            name,
                            &reference,
                            &g,
                            "rolled back",
                            Some(why.clone()),
                            false,
                        );
                    }
                    set_group(run, &reference, |g| g.step = JStep::RolledBack);
                }
            }
        }
        let g = run.groups[&reference].clone();
        run.journal.groups.insert(reference.clone(), g);
    }
    run.journal.save(root)
}

fn set_group(run: &mut Run<'_>, reference: &str, f: impl FnOnce(&mut JGroup)) {
    if let Some(g) = run.groups.get_mut(reference) {
        f(g);
        run.journal.groups.insert(reference.to_string(), g.clone());
    }
}

pub fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Write a component's upgrade record. `upgraded`: it now runs the new image (else the previous one).
fn record(
    rec: &mut Recorder<'_>,
    name: &str,
    reference: &str,
    g: &JGroup,
    outcome: &str,
    reason: Option<String>,
    upgraded: bool,
) {
    let r = rec.state.upgrades.entry(name.to_string()).or_default();
    r.reference = reference.to_string();
    if upgraded {
        r.image_id = g.new_id.clone();
        r.previous_id = Some(g.previous_id.clone());
        r.previous_tag = g.previous_tag.clone();
        r.rejected_id = None;
    } else {
        r.image_id = g.previous_id.clone();
        r.rejected_id = Some(g.new_id.clone());
    }
    r.dump = g.dump.clone();
    r.outcome = outcome.to_string();
    r.reason = reason;
    r.at_unix = now_unix();
}

/// Count the calls of the voice components among `members` (those with a `calls` spec whose unit
/// runs: a stopped one carries none) and decide.
async fn drain_decision<S: ServiceManager, R: Runtime>(
    run: &Run<'_>,
    members: &[&PlannedComponent],
    services: &S,
    runtime: &R,
    since_unix: u64,
) -> Option<(Decision, Vec<String>)> {
    let mut voice: Vec<&&PlannedComponent> = Vec::new();
    for c in members.iter().filter(|c| c.calls.is_some()) {
        let active = services
            .states(std::slice::from_ref(&c.unit))
            .await
            .map(|s| s.iter().any(|s| s.active_state == "active"))
            .unwrap_or(true);
        if active {
            voice.push(c);
        }
    }
    if voice.is_empty() {
        return None;
    }
    let mut total: Result<u64, String> = Ok(0);
    for c in &voice {
        let spec = c.calls.as_ref().expect("filtered");
        let n = runtime.count_calls(&c.container, spec).await;
        total = match (total, n) {
            (Ok(a), Ok(b)) => Ok(a + b),
            (Err(e), _) | (_, Err(e)) => Err(format!("{}: {e}", c.name)),
        };
    }
    Some((
        run.decide(total, since_unix),
        voice.iter().map(|c| c.name.clone()).collect(),
    ))
}

/// A voice component's restart may have to wait: `Some(reason)` to restart now (say why), `None`
/// when it was deferred (recorded as waiting) or given up (recorded as an error).
pub(crate) async fn voice_gate<P, I, S: ServiceManager, R: Runtime>(
    run: &mut Run<'_>,
    rec: &mut Recorder<'_>,
    members: &[&PlannedComponent],
    deferred: Deferred,
    host: &Host<P, I, S, R>,
) -> Result<Option<Option<String>>> {
    let since = run.clock.now_unix();
    let Some((decision, names)) =
        drain_decision(run, members, &*host.services, &*host.runtime, since).await
    else {
        return Ok(Some(None));
    };
    match decision {
        Decision::Proceed(why) => {
            if run.day2.force {
                eprintln!("omlboot: {}: {why}", names.join(", "));
            }
            Ok(Some(Some(why)))
        }
        Decision::Wait(w) => {
            mark_waiting(rec, members, &w)?;
            run.deferred.push(deferred);
            Ok(None)
        }
        Decision::GiveUp(why) => {
            give_up(rec, members, &why)?;
            Ok(None)
        }
    }
}

fn mark_waiting(rec: &mut Recorder<'_>, members: &[&PlannedComponent], w: &Waiting) -> Result<()> {
    for c in members {
        let r = rec.state.upgrades.entry(c.name.clone()).or_default();
        r.outcome = w.outcome().into();
        r.reason = Some(w.describe());
        r.at_unix = now_unix();
        rec.component(&c.name, &c.unit, "waiting", Some(w.describe()))?;
    }
    Ok(())
}

fn give_up(rec: &mut Recorder<'_>, members: &[&PlannedComponent], why: &str) -> Result<()> {
    for c in members {
        let r = rec.state.upgrades.entry(c.name.clone()).or_default();
        r.outcome = "not restarted".into();
        r.reason = Some(why.to_string());
        r.at_unix = now_unix();
        // It still runs, healthy, on what it ran before; what was asked is not in effect.
        rec.component(&c.name, &c.unit, "active", Some(why.to_string()))?;
        rec.state.errors.push(format!("{}: {why}", c.name));
    }
    Ok(())
}

/// Restart `unit` and wait for its job.
async fn restart<S: ServiceManager>(
    services: &S,
    unit: &str,
    deadline: Duration,
) -> Result<(), String> {
    let (tx, _rx) = tokio::sync::oneshot::channel();
    match services.start(unit, true, deadline, tx).await {
        Ok(Outcome::Active(_)) => Ok(()),
        Ok(Outcome::Failed {
            job_result, state, ..
        }) => Err(format!(
            "{unit}: job {job_result}, {}/{} result={}",
            state.active_state, state.sub_state, state.result
        )),
        Err(e) => Err(format!("{unit}: {e:#}")),
    }
}

/// Probe until it passes, then keep probing through the stability window with NRestarts unchanged.
async fn gate_one<S: ServiceManager, R: Runtime>(
    c: &PlannedComponent,
    host_services: &S,
    runtime: &R,
    opts: &Options,
    window: Duration,
) -> Result<Option<ProbeRecord>, (String, Option<ProbeRecord>)> {
    let state = |s: Vec<super::systemd::UnitState>| s.into_iter().next();
    let probe = match &c.probe {
        Some(p) => {
            let r = super::tasks::probe_until(runtime, p, opts.probe_interval).await;
            if !r.passed {
                return Err((format!("probe failed: {}", r.detail), Some(r)));
            }
            Some(r)
        }
        None => None,
    };
    let baseline = state(
        host_services
            .states(std::slice::from_ref(&c.unit))
            .await
            .map_err(|e| (format!("{e:#}"), probe.clone()))?,
    )
    .map(|s| s.n_restarts)
    .unwrap_or(0);
    let start = Instant::now();
    while start.elapsed() < window {
        let pause = opts.probe_interval.min(window - start.elapsed());
        tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
        if let Some(p) = &c.probe {
            if let Err(e) = runtime.probe_once(p).await {
                return Err((
                    format!(
                        "probe passed, then failed {:.0}s into the {}s stability window: {e}",
                        start.elapsed().as_secs_f64(),
                        window.as_secs()
                    ),
                    probe,
                ));
            }
        }
        let now = state(
            host_services
                .states(std::slice::from_ref(&c.unit))
                .await
                .map_err(|e| (format!("{e:#}"), probe.clone()))?,
        );
        if let Some(s) = now {
            if s.n_restarts != baseline || s.active_state != "active" {
                return Err((
                    format!(
                        "{} restarted by itself during the stability window (NRestarts {} → {}, {})",
                        c.unit, baseline, s.n_restarts, s.active_state
                    ),
                    probe,
                ));
            }
        }
    }
    Ok(probe)
}

/// One group through the gate: restart its units on the new image, probe, stability window; on
/// failure roll it back. `members` are the group's components in plan order.
pub(crate) async fn upgrade_group<P, I: ImageStore, S: ServiceManager, R: Runtime>(
    run: &mut Run<'_>,
    rec: &mut Recorder<'_>,
    reference: &str,
    members: &[&PlannedComponent],
    host: &Host<P, I, S, R>,
    opts: &Options,
) -> Result<()> {
    let root = rec.root;
    let g = run.groups[reference].clone();
    let start = std::time::Instant::now();
    let names: Vec<&str> = members.iter().map(|c| c.name.as_str()).collect();
    run.jstep(root, reference, JStep::Restarting, Some(names.join(",")))?;
    let mut failure: Option<String> = None;
    for c in members {
        if let Err(e) = restart(&*host.services, &c.unit, opts.start_deadline).await {
            failure = Some(e);
            break;
        }
    }
    let mut probes: Vec<(&PlannedComponent, Option<ProbeRecord>)> = Vec::new();
    if failure.is_none() {
        run.jstep(root, reference, JStep::Probing, Some(names.join(",")))?;
        for c in members {
            match gate_one(
                c,
                &*host.services,
                &*host.runtime,
                opts,
                run.day2.stability_window,
            )
            .await
            {
                Ok(p) => probes.push((c, p)),
                Err((why, p)) => {
                    if let Some(p) = p {
                        rec.probe(&c.name, p)?;
                    }
                    failure = Some(format!("{}: {why}", c.name));
                    break;
                }
            }
        }
    }
    match failure {
        None => {
            run.jstep(root, reference, JStep::Upgraded, None)?;
            let what = format!("{} → {}", short(&g.previous_id), short(&g.new_id));
            for (c, p) in probes {
                rec.component(&c.name, &c.unit, "active", None)?;
                if let Some(p) = p {
                    rec.probe(&c.name, p)?;
                }
                record(
                    rec,
                    &c.name,
                    reference,
                    &g,
                    "upgraded",
                    Some(what.clone()),
                    true,
                );
            }
            rec.step(
                &format!("upgrade {}", names.join(",")),
                "upgraded",
                start,
                Some(what),
            )?;
            set_group(run, reference, |g| g.step = JStep::Upgraded);
            Ok(())
        }
        Some(why) => rollback_group(run, rec, reference, members, &why, true, host, opts).await,
    }
}

/// Put the previous image back under the reference, restore the dump, restart (unless the units never
/// left the previous image), confirm the probes. Recorded as rolled back with `why`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn rollback_group<P, I: ImageStore, S: ServiceManager, R: Runtime>(
    run: &mut Run<'_>,
    rec: &mut Recorder<'_>,
    reference: &str,
    members: &[&PlannedComponent],
    why: &str,
    restart_units: bool,
    host: &Host<P, I, S, R>,
    opts: &Options,
) -> Result<()> {
    let root = rec.root;
    let g = run.groups[reference].clone();
    let start = std::time::Instant::now();
    let names: Vec<&str> = members.iter().map(|c| c.name.as_str()).collect();
    run.jstep(root, reference, JStep::RollingBack, Some(why.to_string()))?;
    let mut failure: Option<String> = None;
    if let Err(e) = host.images.tag(&g.previous_id, reference).await {
        failure = Some(format!("putting the previous image back: {e:#}"));
    }
    if failure.is_none() {
        if let Some(dump) = &g.dump {
            let path = opts.target.path(dump);
            if let Err(e) = host.runtime.restore_database(&path).await {
                failure = Some(format!("restoring the database dump {dump}: {e}"));
            }
        }
    }
    if failure.is_none() && restart_units {
        for c in members {
            if let Err(e) = restart(&*host.services, &c.unit, opts.start_deadline).await {
                failure = Some(e);
                break;
            }
        }
    }
    run.image_overrides
        .insert(reference.to_string(), g.previous_id.clone());
    let mut probes = Vec::new();
    if failure.is_none() {
        for c in members {
            if let Some(p) = &c.probe {
                let r = super::tasks::probe_until(&*host.runtime, p, opts.probe_interval).await;
                if !r.passed && failure.is_none() {
                    failure = Some(format!(
                        "{}: probe failed on the previous image: {}",
                        c.name, r.detail
                    ));
                }
                probes.push((c, r));
            }
        }
    }
    let reason = format!("rolled back to {}: {why}", short(&g.previous_id));
    match &failure {
        None => {
            for c in members {
                rec.component(&c.name, &c.unit, "active", Some(reason.clone()))?;
                record(
                    rec,
                    &c.name,
                    reference,
                    &g,
                    "rolled back",
                    Some(why.to_string()),
                    false,
                );
            }
            // After the component records, which start without a probe: the gate's results are
            // what `status` shows for the rolled-back components.
            for (c, p) in probes.drain(..) {
                rec.probe(&c.name, p)?;
            }
            // The dump put the database back as the previous image's migrations left it: so do
            // their records, or the next run would run them again on the previous image. A task
            // that wrote a volume (static files) runs again: the dump did not undo it.
            if g.dump.is_some() {
                for (name, r) in rec.state.tasks.iter_mut() {
                    if run.dump_undoes.contains(name)
                        && r.succeeded_image_id.as_deref() == Some(g.new_id.as_str())
                    {
                        r.succeeded_image_id = Some(g.previous_id.clone());
                    }
                }
            }
            rec.save()?;
            run.jstep(root, reference, JStep::RolledBack, Some(why.to_string()))?;
            rec.step(
                &format!("upgrade {}", names.join(",")),
                "rolled back",
                start,
                Some(reason),
            )?;
            run.rolled_back = true;
        }
        Some(f) => {
            let reason = format!("{reason}; the rollback failed too: {f}");
            for c in members {
                rec.component(&c.name, &c.unit, "failed", Some(reason.clone()))?;
                record(
                    rec,
                    &c.name,
                    reference,
                    &g,
                    "failed",
                    Some(reason.clone()),
                    false,
                );
            }
            for (c, p) in probes.drain(..) {
                rec.probe(&c.name, p)?;
            }
            run.jstep(root, reference, JStep::RolledBack, Some(reason.clone()))?;
            rec.step(
                &format!("upgrade {}", names.join(",")),
                "failed",
                start,
                Some(reason),
            )?;
        }
    }
    set_group(run, reference, |g| g.step = JStep::RolledBack);
    Ok(())
}

/// At the end of a run: wait for the deferred voice restarts, polling their calls, and do each once
/// it may proceed (in the order they were deferred; each keeps the time its wait began).
pub(crate) async fn finish_deferred<P, I: ImageStore, S: ServiceManager, R: Runtime>(
    run: &mut Run<'_>,
    rec: &mut Recorder<'_>,
    plan: &Plan,
    host: &Host<P, I, S, R>,
    opts: &Options,
) -> Result<()> {
    let mut pending = std::mem::take(&mut run.deferred);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for d in pending {
            let (members, since): (Vec<&PlannedComponent>, u64) = match &d {
                Deferred::Restart {
                    component,
                    since_unix,
                } => (
                    plan.components
                        .iter()
                        .filter(|c| &c.name == component)
                        .collect(),
                    *since_unix,
                ),
                Deferred::Group {
                    reference,
                    since_unix,
                } => (
                    plan.components
                        .iter()
                        .filter(|c| {
                            run.groups
                                .get(reference)
                                .is_some_and(|g| g.components.contains(&c.name))
                        })
                        .collect(),
                    *since_unix,
                ),
            };
            let decision =
                match drain_decision(run, &members, &*host.services, &*host.runtime, since).await {
                    Some((d, _)) => d,
                    None => Decision::Proceed("no call to wait for".into()),
                };
            match decision {
                Decision::Wait(w) => {
                    mark_waiting(rec, &members, &w)?;
                    still.push(d);
                }
                Decision::GiveUp(why) => give_up(rec, &members, &why)?,
                Decision::Proceed(why) => match &d {
                    Deferred::Group { reference, .. } => {
                        eprintln!("omlboot: {reference}: {why}");
                        upgrade_group(run, rec, reference, &members, host, opts).await?;
                        note(rec, &members, &why);
                    }
                    Deferred::Restart { .. } => {
                        let c = members[0];
                        let start = std::time::Instant::now();
                        match restart(&*host.services, &c.unit, opts.start_deadline).await {
                            Ok(()) => {
                                rec.component(&c.name, &c.unit, "active", None)?;
                                let r = rec.state.upgrades.entry(c.name.clone()).or_default();
                                r.outcome = "restarted".into();
                                r.reason = Some(why.clone());
                                r.at_unix = now_unix();
                                rec.step(
                                    &format!("unit {}", c.unit),
                                    "restarted",
                                    start,
                                    Some(why),
                                )?;
                                if let Some(p) = &c.probe {
                                    let r = super::tasks::probe_until(
                                        &*host.runtime,
                                        p,
                                        opts.probe_interval,
                                    )
                                    .await;
                                    rec.probe(&c.name, r)?;
                                }
                            }
                            Err(e) => {
                                rec.component(&c.name, &c.unit, "failed", Some(e.clone()))?;
                                rec.step(&format!("unit {}", c.unit), "failed", start, Some(e))?;
                            }
                        }
                    }
                },
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(run.day2.drain_poll).await;
        }
    }
    Ok(())
}

/// After a run: every component that is active on the image its reference names now, and that no
/// group or voice wait handled, is recorded on that image (installed, or as it was).
pub(crate) fn record_settled(
    rec: &mut Recorder<'_>,
    plan: &Plan,
    after: &BTreeMap<String, String>,
) {
    for c in &plan.components {
        let Some(id) = after.get(&c.image) else {
            continue;
        };
        let healthy = rec
            .state
            .components
            .get(&c.name)
            .is_some_and(|r| r.state == "active" && r.probe.as_ref().is_none_or(|p| p.passed));
        if !healthy {
            continue;
        }
        let r = rec.state.upgrades.entry(c.name.clone()).or_default();
        if r.image_id.is_empty() {
            r.outcome = "installed".into();
            r.at_unix = now_unix();
        }
        if r.image_id != *id && r.outcome != "not restarted" {
            r.image_id = id.clone();
        }
        // A rolled back record keeps the reference it was rolled back from: the host is degraded
        // (exit 3) while the plan still names it, and no longer once the reference changes.
        if r.outcome != "rolled back" {
            r.reference = c.image.clone();
        }
    }
}

/// `omlboot rollback [COMPONENT…]`: back to the recorded previous images, offline (a tag and a
/// restart; no registry), gated by the same probes. `components` empty: every one with a previous
/// image. Returns the components rolled back.
pub async fn rollback_on<P, I: ImageStore, S: ServiceManager, R: Runtime>(
    plan: &Plan,
    opts: &Options,
    day2: &Day2,
    host: &Host<P, I, S, R>,
    components: &[String],
) -> Result<State> {
    let root = opts.target.root();
    let state = State::load(root)?
        .context("no state: nothing was applied on this host, there is nothing to roll back")?;
    for name in components {
        anyhow::ensure!(
            plan.components.iter().any(|c| &c.name == name),
            "no component {name} on this host"
        );
        anyhow::ensure!(
            state
                .upgrades
                .get(name)
                .is_some_and(|r| r.previous_id.is_some()),
            "{name} has no previous image recorded: nothing to roll back to"
        );
    }
    let mut rec = Recorder::new(state, root);
    let mut run = Run::new(day2, root, plan);
    let mut by_ref: BTreeMap<String, JGroup> = BTreeMap::new();
    for c in &plan.components {
        let Some(r) = rec.state.upgrades.get(&c.name) else {
            continue;
        };
        let Some(prev) = &r.previous_id else { continue };
        if !components.is_empty() && !components.contains(&c.name) {
            continue;
        }
        if prev == &r.image_id {
            continue;
        }
        let g = by_ref.entry(c.image.clone()).or_insert_with(|| JGroup {
            components: Vec::new(),
            previous_id: prev.clone(),
            new_id: r.image_id.clone(),
            previous_tag: r.previous_tag.clone(),
            dump: r.dump.clone(),
            step: JStep::Upgraded,
            reason: None,
        });
        g.components.push(c.name.clone());
    }
    // Components sharing an image go back together: the reference is theirs.
    for (reference, g) in by_ref.iter_mut() {
        for c in plan.components.iter().filter(|c| &c.image == reference) {
            if !g.components.contains(&c.name) {
                g.components.push(c.name.clone());
            }
        }
    }
    if by_ref.is_empty() {
        return Ok(rec.state);
    }
    run.journal = Journal {
        started_unix: now_unix(),
        groups: by_ref.clone(),
        ..Default::default()
    };
    run.groups = by_ref.clone();
    for (reference, g) in &by_ref {
        let members: Vec<&PlannedComponent> = plan
            .components
            .iter()
            .filter(|c| g.components.contains(&c.name))
            .collect();
        // The image it is rolled back from becomes the previous one, kept, so a rollback can be undone.
        let tag = previous_tag(&g.components[0], &g.new_id);
        let _ = host.images.tag(&g.new_id, &tag).await;
        rollback_group(
            &mut run,
            &mut rec,
            reference,
            &members,
            "omlboot rollback",
            true,
            host,
            opts,
        )
        .await?;
        for name in &g.components {
            if let Some(r) = rec.state.upgrades.get_mut(name) {
                if r.outcome == "rolled back" {
                    r.previous_id = Some(g.new_id.clone());
                    r.previous_tag = Some(tag.clone());
                }
            }
        }
    }
    for (r, id) in &run.image_overrides {
        rec.state.images.insert(r.clone(), id.clone());
    }
    rec.state.conclude(&plan.optional_components());
    rec.save()?;
    Ok(rec.state)
}

/// Lines for `status`: per component, current and previous image, last outcome and why.
pub fn status_lines(s: &State) -> String {
    if s.upgrades.is_empty() {
        return String::new();
    }
    let mut out = String::from("images:\n");
    let w = s.upgrades.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, r) in &s.upgrades {
        let prev = r
            .previous_id
            .as_deref()
            .map(short)
            .unwrap_or_else(|| "-".into());
        let reason = r
            .reason
            .as_deref()
            .map(|x| format!(": {x}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {name:<w$}  {:<12} previous {:<12} {}{reason}\n",
            short(&r.image_id),
            prev,
            if r.outcome.is_empty() {
                "-"
            } else {
                &r.outcome
            },
        ));
    }
    out
}

/// Add why a voice restart went ahead (no call, the window, --force) to the records of `members`.
pub(crate) fn note(rec: &mut Recorder<'_>, members: &[&PlannedComponent], why: &str) {
    for c in members.iter().filter(|c| c.calls.is_some()) {
        if let Some(r) = rec.state.upgrades.get_mut(&c.name) {
            r.reason = Some(match &r.reason {
                Some(x) => format!("{x}; {why}"),
                None => why.to_string(),
            });
        }
    }
}

/// Whether the record of a component says it waits (for `status`).
pub fn waiting(r: &UpgradeRecord) -> bool {
    r.outcome.starts_with("waiting")
}
