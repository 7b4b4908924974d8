//! `omlboot apply` and `omlboot run` (apply once per instance).
use super::status::state_table;
use super::{build_plan, runtime, to_json, Inputs, Report};
use crate::apply::{self, state::State};
use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::facts::{self, Facts};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub enum Applied {
    /// `run` on an instance that was already provisioned: nothing was done.
    AlreadyProvisioned { instance: String },
    Finished {
        state: Box<State>,
        took: Duration,
        /// `run` with `restore_file_timestamp`: what the first-boot restore did.
        restored: Option<String>,
    },
}

/// The engine's options from config and facts.
pub(super) fn engine_options(
    inputs: &Inputs,
    cfg: &Config,
    facts: &Facts,
    instance_id: String,
) -> apply::engine::Options {
    let s = cfg.settings();
    let images = apply::images::ImageOptions {
        parallel: s.image_pull_parallel as usize,
        auth_file: s.registry_auth_file.map(PathBuf::from),
        tls_verify: s.registry_tls_verify,
        ..Default::default()
    };
    apply::engine::Options {
        target: crate::target::Target::from_root(&inputs.root),
        family: facts.os.family,
        skip_packages: s.skip_packages,
        image_bundle: s.image_bundle.map(PathBuf::from),
        images,
        packages: apply::packages::PackageOptions::default(),
        start_deadline: Duration::from_secs(s.unit_start_timeout_s),
        probe_interval: Duration::from_secs(2),
        instance_id,
    }
}

/// Make the host match the plan.
pub fn apply(inputs: &Inputs) -> Result<Applied> {
    converge(inputs, false, false)
}

/// [`apply`]; `force`: restart voice components at once, calls or not (`apply --force`).
pub fn apply_force(inputs: &Inputs, force: bool) -> Result<Applied> {
    converge(inputs, false, force)
}

/// What cloud-init runs: apply once per instance, so a reboot does nothing and a clone provisions.
pub fn run(inputs: &Inputs) -> Result<Applied> {
    converge(inputs, true, false)
}

pub(super) fn converge(inputs: &Inputs, only_once: bool, force: bool) -> Result<Applied> {
    let (mut cfg, units) = inputs.load()?;
    let rt = runtime()?;
    let root = &inputs.root;
    let instance = apply::state::instance_id(root).ok_or_else(|| {
        Error::invalid(
            "cannot identify this instance: no cloud-init instance-id and no /etc/machine-id",
        )
    })?;
    // One apply at a time per host: cloud-init's runcmd and a first-boot unit may both call `run`.
    let _lock = apply::state::lock(root)?;
    let settings = cfg.settings();
    // A first-boot restore not done (or not healthy, or its tasks not re-run) yet on this instance:
    // converge again (apply is idempotent) and finish it, so the next `run` retries what failed.
    let restore_pending = crate::backup::firstboot::pending(
        only_once,
        settings.restore_file_timestamp.as_deref(),
        root,
        &instance,
    )?;
    if only_once && !restore_pending && apply::state::already_provisioned(root, &instance)? {
        return Ok(Applied::AlreadyProvisioned { instance });
    }
    if only_once {
        // Before the first change: if this run is cut short, the next boot runs it again.
        let unit = crate::bake::FIRSTBOOT_UNIT;
        match crate::bake::arm_firstboot_unit(root) {
            Ok(true) => eprintln!(
                "omlboot: enabled {unit}: if this run is cut short (power loss, reset), the next boot runs it again"
            ),
            Ok(false) => {}
            Err(e) => eprintln!(
                "warning: could not enable {unit} ({e:#}): if this run is cut short, it will not go on by itself at the next boot"
            ),
        }
    }
    let facts = rt.block_on(facts::gather(root, &cfg));
    super::require_private_ip(&facts)?;
    for w in &facts.warnings {
        eprintln!("warning: {w}");
    }
    let plan = build_plan(&mut cfg, &facts, &units, &[root])?;
    let opts = engine_options(inputs, &cfg, &facts, instance.clone());
    let day2 = super::upgrade::day2(&cfg, force)?;
    let started = Instant::now();
    let converge_once = || rt.block_on(apply::engine::apply_day2(&plan, &opts, &day2));
    let mut state = converge_once()?;
    let mut restored = None;
    if restore_pending && state.status == apply::state::Status::Done {
        let mut note = first_boot_restore(inputs, &cfg, &plan, &instance, &rt)?;
        let tasks: Vec<String> = plan
            .tasks()
            .filter(|t| t.after_restore)
            .map(|t| t.name.clone())
            .collect();
        if let Some(again) =
            crate::backup::firstboot::rerun_tasks(root, &instance, &tasks, converge_once)?
        {
            note.push_str(&rerun_note(&tasks, &again));
            state = again;
        }
        restored = Some(note);
    }
    Ok(Applied::Finished {
        state: Box::new(state),
        took: started.elapsed(),
        restored,
    })
}

/// What the re-run of the `after_restore` tasks did, for the `restored` note.
fn rerun_note(tasks: &[String], state: &State) -> String {
    let ran = |t: &&String| {
        state
            .tasks
            .get(t.as_str())
            .is_some_and(|r| r.outcome == "succeeded")
    };
    if state.status == apply::state::Status::Done {
        let ran: Vec<&str> = tasks.iter().filter(ran).map(String::as_str).collect();
        format!("; ran again on the restored database: {}", ran.join(", "))
    } else {
        format!(
            "; {} did not all run again on the restored database: the next `omlboot run` runs them again (it does not restore again)",
            tasks.join(", ")
        )
    }
}

/// `restore_file_timestamp` once the host is provisioned (apply reached done): the code path of
/// [`crate::backup::firstboot`] with the real host (podman, systemctl, the plan's probes).
fn first_boot_restore(
    inputs: &Inputs,
    cfg: &Config,
    plan: &crate::plan::Plan,
    instance: &str,
    rt: &tokio::runtime::Runtime,
) -> Result<String> {
    use crate::backup::{config::Backup, firstboot, restore::Refused, seams};
    let s = cfg.settings();
    let Some(source) = s.restore_file_timestamp.clone() else {
        return Ok(String::new());
    };
    let b = Backup::from_settings(&s);
    let dest = super::backup::destination(&b, inputs)?;
    let pg = super::backup::host_pg(cfg, &s, inputs)?;
    let role = s.role.clone();
    let writers: Vec<String> = inputs
        .units()?
        .catalog
        .components
        .iter()
        .filter(|c| c.writes_db && c.hosts.contains(&role))
        .map(|c| c.unit.clone())
        .collect();
    let check = |units: &[String]| -> anyhow::Result<()> {
        for c in plan.components.iter().filter(|c| units.contains(&c.unit)) {
            let Some(probe) = &c.probe else { continue };
            let r = rt.block_on(apply::tasks::probe_until(
                &apply::runtime::Live,
                probe,
                Duration::from_secs(2),
            ));
            if !r.passed {
                anyhow::bail!("{}: {}: {}", c.name, r.probe, r.detail);
            }
        }
        Ok(())
    };
    let spec = firstboot::Spec {
        source: &source,
        instance,
        writers,
        work: b.work.clone(),
        root: inputs.root.clone(),
        now: apply::state::now_unix(),
    };
    match firstboot::restore_once(
        &pg,
        &seams::PodmanVolumes,
        &seams::Systemctl,
        dest.as_deref(),
        &spec,
        &check,
    ) {
        Ok(firstboot::Outcome::Restored(r)) => Ok(format!(
            "restored {} (restore_file_timestamp) into {}: {} tables, {} rows in {} ms{}",
            r.source,
            r.database,
            r.tables,
            r.rows,
            r.duration_ms,
            r.previous
                .as_ref()
                .map(|p| format!("; the fresh database is kept as {p}"))
                .unwrap_or_default()
        )),
        Ok(firstboot::Outcome::AlreadyDone(f)) => Ok(format!(
            "{} was restored on this instance already; units healthy",
            f.source
        )),
        Err(Refused::Invalid(m)) => Err(Error::invalid(m)),
        Err(Refused::Failed(e)) => Err(Error::Failed(e)),
    }
}

impl Report for Applied {
    fn table(&self) -> String {
        match self {
            Applied::AlreadyProvisioned { .. } => String::new(),
            Applied::Finished { state, .. } => state_table(state),
        }
    }
    fn json(&self) -> serde_json::Value {
        match self {
            Applied::AlreadyProvisioned { .. } => serde_json::Value::Null,
            Applied::Finished { state, .. } => to_json(state),
        }
    }
    fn notes(&self, _json: bool) -> Vec<String> {
        vec![match self {
            Applied::AlreadyProvisioned { instance } => format!(
                "omlboot: already provisioned for {instance}; nothing to do (use `omlboot apply` to converge again)"
            ),
            Applied::Finished { state, took, .. } => {
                format!("omlboot: {:?} in {:.1}s", state.status, took.as_secs_f64())
            }
        }]
        .into_iter()
        .chain(match self {
            Applied::Finished {
                restored: Some(r), ..
            } if !r.is_empty() => Some(format!("omlboot: {r}")),
            _ => None,
        })
        .collect()
    }
    fn code(&self) -> Code {
        match self {
            Applied::AlreadyProvisioned { .. } => Code::Ok,
            Applied::Finished { state, .. } => state.status.code(),
        }
    }
}
