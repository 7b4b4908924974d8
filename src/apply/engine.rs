//! Carry out a plan on the host, in order, recording every step in state.json.
//!
//! Idempotency is the point: files are compared before they are written, and a running unit is
//! restarted only when its unit file, env file, mounted config or image changed. A re-run that changes
//! nothing touches no unit, so no call drops.
use super::state::{ComponentRecord, State, StepRecord};
use super::{images, packages, systemd, tls};
use crate::facts::os::PkgFamily;
use crate::fsutil::{ensure_dir, write_atomic, Written};
use crate::plan::{Plan, Step};
use anyhow::{Context as _, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Options {
    /// Host root: "/" in production, a temp dir in tests (files only; units and images are live).
    pub root: PathBuf,
    pub family: PkgFamily,
    pub skip_packages: bool,
    pub image_bundle: Option<PathBuf>,
    pub images: images::ImageOptions,
    pub packages: packages::PackageOptions,
    /// Longest wait for one unit to become active.
    pub start_deadline: Duration,
    pub instance_id: String,
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

struct Recorder<'a> {
    state: State,
    root: &'a Path,
}

impl Recorder<'_> {
    fn step(
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
        self.state.save(self.root)
    }
    fn component(
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
            },
        );
        self.state.save(self.root)
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

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

async fn run_cmd(program: &str, args: &[&str]) -> Result<()> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Image id of every reference, from one `podman images` listing (a per-reference inspect only for
/// references the listing cannot name, such as digests): dozens of podman runs are slow on a small VM.
async fn image_ids(
    opts: &images::ImageOptions,
    refs: &[String],
) -> BTreeMap<String, Option<String>> {
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(out) = tokio::process::Command::new(&opts.podman)
        .args(&opts.extra_args)
        .args([
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((name, id)) = line.split_once(' ') {
                listed.insert(
                    name.to_string(),
                    id.trim().trim_start_matches("sha256:").to_string(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for r in refs {
        let id = match listed.get(r) {
            Some(id) => Some(id.clone()),
            None => opts.image_id(r).await,
        };
        out.insert(r.clone(), id);
    }
    out
}

/// The packages step. Returns false when it failed (recorded in the state): nothing after it can work.
async fn packages_step(
    rec: &mut Recorder<'_>,
    by_family: &BTreeMap<String, Vec<String>>,
    opts: &Options,
    start: Instant,
) -> Result<bool> {
    let name = "packages";
    if opts.skip_packages {
        rec.step(name, "skipped", start, Some("skip_packages is set".into()))?;
        return Ok(true);
    }
    let (key, family) = match opts.family {
        PkgFamily::Apt => ("apt", packages::Family::Apt),
        PkgFamily::Dnf => ("dnf", packages::Family::Dnf),
        PkgFamily::Unknown => {
            rec.state.errors.push(
                "unknown OS family: cannot install packages (set skip_packages for a prepared image)"
                    .into(),
            );
            rec.step(name, "failed", start, Some("unknown OS family".into()))?;
            return Ok(false);
        }
    };
    let names = by_family.get(key).cloned().unwrap_or_default();
    match packages::ensure(family, &names, &opts.packages).await {
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
            rec.step(name, "failed", start, Some(format!("{e:#}")))?;
            return Ok(false);
        }
    }
    Ok(true)
}

/// Image ids per reference before and after the images step, and the references that could not be
/// made present (with why).
struct ImagesResult {
    before: BTreeMap<String, Option<String>>,
    after: BTreeMap<String, Option<String>>,
    failures: BTreeMap<String, String>,
}

/// Make every image of the plan present (bundle first, then pulls), remembering what each reference
/// pointed at before so a changed image restarts its component. Presence comes from one `podman
/// images` listing: a converged host runs two podman commands here, not several per image.
async fn images_step(rec: &mut Recorder<'_>, plan: &Plan, opts: &Options) -> Result<ImagesResult> {
    let refs: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| {
            if let Step::Image { reference, .. } = s {
                Some(reference.clone())
            } else {
                None
            }
        })
        .collect();
    let before = image_ids(&opts.images, &refs).await;
    let missing: Vec<String> = refs
        .iter()
        .filter(|r| before.get(*r).cloned().flatten().is_none())
        .cloned()
        .collect();
    let start = Instant::now();
    let mut outcomes = Vec::new();
    if let Some(bundle) = &opts.image_bundle {
        outcomes.extend(images::load_bundle(bundle, &opts.images).await?);
    }
    outcomes.extend(images::ensure(&missing, &opts.images).await);
    let mut failures = BTreeMap::new();
    let mut fetched = 0;
    for (r, o) in &outcomes {
        match o {
            images::ImageOutcome::Failed { kind, message, .. } => {
                failures.insert(r.clone(), format!("image {r}: {kind:?}: {message}"));
            }
            images::ImageOutcome::Present { .. } => {}
            images::ImageOutcome::Pulled { .. } | images::ImageOutcome::Loaded { .. } => {
                fetched += 1
            }
        }
    }
    let after = if outcomes.is_empty() {
        before.clone()
    } else {
        image_ids(&opts.images, &refs).await
    };
    // A reference that failed to pull but was loaded from the bundle (or vice versa) is fine.
    failures.retain(|r, _| after.get(r).cloned().flatten().is_none());
    let summary = format!(
        "{} images: {} already present, {fetched} pulled or loaded, {} failed",
        refs.len(),
        refs.len() - missing.len(),
        failures.len()
    );
    rec.step(
        "images",
        if failures.is_empty() {
            "done"
        } else {
            "failed"
        },
        start,
        Some(summary),
    )?;
    Ok(ImagesResult {
        before,
        after,
        failures,
    })
}

/// What `omlboot bake` needs of a plan: its packages and its images, nothing host-specific.
/// The state is recorded like apply's (bake removes it when it cleans the image).
pub async fn prepare(plan: &Plan, opts: &Options) -> Result<State> {
    let root = opts.root.as_path();
    if let Some(b) = &opts.image_bundle {
        anyhow::ensure!(b.is_file(), "image bundle {} does not exist", b.display());
    }
    let mut rec = Recorder {
        state: State::new(&opts.instance_id, &plan.host.role),
        root,
    };
    rec.state.save(root)?;
    let mut ok = true;
    for step in &plan.steps {
        if let Step::Packages { by_family } = step {
            ok = packages_step(&mut rec, by_family, opts, Instant::now()).await?;
        }
    }
    if ok {
        let images = images_step(&mut rec, plan, opts).await?;
        // No component starts during a bake, so a missing image is an error of the bake itself.
        rec.state.errors.extend(images.failures.into_values());
    }
    rec.state.conclude(&[]);
    rec.state.save(root)?;
    Ok(rec.state)
}

/// Apply the plan. Returns the final state (also saved). Errors are only for failures that stop
/// everything (state cannot be written, D-Bus unreachable); component failures are in the state.
pub async fn apply(plan: &Plan, opts: &Options) -> Result<State> {
    let root = opts.root.as_path();
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

    let mut rec = Recorder {
        state: State::new(&opts.instance_id, &plan.host.role),
        root,
    };
    for c in &plan.components {
        rec.state.components.insert(
            c.name.clone(),
            ComponentRecord {
                unit: c.unit.clone(),
                state: "pending".into(),
                reason: None,
            },
        );
    }
    rec.state.save(root)?;

    let mut changed_files: BTreeSet<String> = BTreeSet::new();

    for step in &plan.steps {
        let start = Instant::now();
        match step {
            Step::Packages { by_family } => {
                if !packages_step(&mut rec, by_family, opts, start).await? {
                    // Nothing below can work without podman.
                    break;
                }
            }
            Step::Directory { path, mode, .. } => {
                let p = under(root, path);
                let changed = ensure_dir(&p, *mode)?;
                chown_root(&p)?;
                rec.step(
                    &format!("directory {path}"),
                    if changed { "changed" } else { "unchanged" },
                    start,
                    None,
                )?;
            }
            Step::File {
                path,
                mode,
                content,
                ..
            } => {
                let p = under(root, path);
                if let Some(parent) = p.parent() {
                    if !parent.is_dir() {
                        std::fs::create_dir_all(parent)?;
                    }
                }
                let w = write_atomic(&p, content, *mode)?;
                chown_root(&p)?;
                let outcome = match w {
                    Written::Unchanged => "unchanged",
                    Written::ModeFixed | Written::Changed => {
                        changed_files.insert(path.clone());
                        "changed"
                    }
                };
                if outcome == "changed"
                    && path.starts_with("/etc/sysctl.d/")
                    && root == Path::new("/")
                {
                    if let Err(e) = run_cmd("sysctl", &["-q", "-p", path]).await {
                        tracing::warn!("{e:#}");
                    }
                }
                rec.step(&format!("file {path}"), outcome, start, None)?;
            }
            Step::Tls {
                cert, key, sans, ..
            } => {
                let (cp, kp) = (under(root, cert), under(root, key));
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
                    let a = write_atomic(&kp, p.key_pem.as_bytes(), 0o600)?;
                    let b = write_atomic(&cp, p.cert_pem.as_bytes(), 0o644)?;
                    if a != Written::Unchanged || b != Written::Unchanged {
                        outcome = "changed";
                        changed_files.insert(cert.clone());
                    }
                }
                rec.step(&format!("tls {cert}"), outcome, start, None)?;
            }
            Step::Timezone { tz } => {
                let current = std::fs::read_link(root.join("etc/localtime"))
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if current.ends_with(&format!("zoneinfo/{tz}")) || root != Path::new("/") {
                    rec.step(&format!("timezone {tz}"), "unchanged", start, None)?;
                } else {
                    match run_cmd("timedatectl", &["set-timezone", tz]).await {
                        Ok(()) => rec.step(&format!("timezone {tz}"), "changed", start, None)?,
                        Err(e) => rec.step(
                            &format!("timezone {tz}"),
                            "failed",
                            start,
                            Some(format!("{e:#}")),
                        )?,
                    }
                }
            }
            Step::Image { .. } => {
                // All images are fetched together below, in parallel.
            }
            Step::DaemonReload | Step::Enable { .. } | Step::Start { .. } => {}
        }
    }
    if !rec.state.errors.is_empty() {
        rec.state.conclude(&plan.optional_components());
        rec.state.save(root)?;
        return Ok(rec.state);
    }

    let images = images_step(&mut rec, plan, opts).await?;

    // systemd: reload, enable, then start/restart in order.
    let sd = systemd::Systemd::system()
        .await
        .context("connecting to systemd on the system bus")?;
    let start = Instant::now();
    sd.daemon_reload().await?;
    rec.step("systemd daemon-reload", "done", start, None)?;
    let start = Instant::now();
    let enable: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| {
            if let Step::Enable { units } = s {
                Some(units.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    let changes = sd.enable(&enable).await?;
    rec.step(
        &format!("enable {} units", enable.len()),
        if changes.is_empty() {
            "unchanged"
        } else {
            "changed"
        },
        start,
        None,
    )?;
    for hu in enable
        .iter()
        .filter(|u| !plan.components.iter().any(|c| &c.unit == *u))
    {
        // Host units (podman.socket) are started like components but are not components.
        let _ = sd.start(hu, opts.start_deadline).await;
    }

    // Decide per component, in plan (dependency) order: nothing, start, or restart.
    let sd = std::sync::Arc::new(sd);
    let mut jobs: Vec<(usize, &'static str, bool)> = Vec::new();
    for (i, c) in plan.components.iter().enumerate() {
        let start = Instant::now();
        let name = format!("unit {}", c.unit);
        if let Some(reason) = images.failures.get(&c.image) {
            rec.component(&c.name, &c.unit, "failed", Some(reason.clone()))?;
            rec.step(&name, "failed", start, Some(reason.clone()))?;
            continue;
        }
        let image_changed = images.before.get(&c.image) != images.after.get(&c.image);
        let files_changed = c.files.iter().any(|f| changed_files.contains(f));
        let current = sd.state(&c.unit).await?;
        let running = matches!(
            current.active_state.as_str(),
            "active" | "reloading" | "activating"
        );
        if running && (image_changed || files_changed) {
            jobs.push((i, "restarted", true));
        } else if running {
            rec.component(&c.name, &c.unit, "active", None)?;
            rec.step(&name, "unchanged", start, None)?;
        } else {
            if current.active_state == "failed" {
                let _ = sd.reset_failed(&c.unit).await;
            }
            jobs.push((i, "started", false));
        }
    }

    // Run the jobs together, queued one after another in plan order so systemd's After= ordering
    // holds between them; independent units then start in parallel, as at boot.
    let mut running = tokio::task::JoinSet::new();
    let mut previous: Option<tokio::sync::oneshot::Receiver<()>> = None;
    for (i, action, restart) in jobs {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let wait_for = previous.replace(rx);
        let sd = std::sync::Arc::clone(&sd);
        let unit = plan.components[i].unit.clone();
        let deadline = opts.start_deadline;
        running.spawn(async move {
            if let Some(prev) = wait_for {
                let _ = prev.await;
            }
            let start = Instant::now();
            let result = sd.start_queued(&unit, restart, deadline, tx).await;
            (i, action, start, result)
        });
    }
    while let Some(joined) = running.join_next().await {
        let (i, action, start, result) = joined.context("a unit start task panicked")?;
        let c = &plan.components[i];
        let name = format!("unit {}", c.unit);
        match result {
            Ok(systemd::Outcome::Active(_)) => {
                rec.component(&c.name, &c.unit, "active", None)?;
                rec.step(&name, action, start, None)?;
            }
            Ok(systemd::Outcome::Failed {
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
    rec.state.conclude(&plan.optional_components());
    rec.state.save(root)?;
    Ok(rec.state)
}
