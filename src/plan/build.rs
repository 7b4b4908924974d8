//! Config + facts + catalog → plan. Pure: no I/O, so the same inputs always give the same plan.
use super::{secrets, HostSummary, Plan, PlannedComponent, PlannedTask, Probe, Step, TaskAction};
use crate::catalog::{parse_mode, wiring, Component, Units};
use crate::config::Config;
use crate::facts::{os::PkgFamily, Facts};
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const ENV_DIR: &str = "/etc/default";
const UNIT_DIR: &str = "/etc/systemd/system";

/// One rendered file: `template` with `ctx`; `probe` says which secrets the template read.
fn rendered(
    units: &Units,
    probe: &secrets::Probe,
    template: &str,
    ctx: &tera::Context,
    path: String,
    mode: u32,
    component: Option<&str>,
) -> Result<Step> {
    let held = probe.secrets_read(units, template, ctx)?;
    let content = units.render(template, ctx)?;
    file_step(path, mode, content, component, &held)
}

fn file_step(
    path: String,
    mode: u32,
    content: String,
    component: Option<&str>,
    secrets_held: &[&str],
) -> Result<Step> {
    let secret = !secrets_held.is_empty();
    if secret && mode & 0o077 != 0 {
        // A template change must never leak a secret into a world-readable file.
        bail!(
            "{path} would hold a secret ({}) with mode {mode:04o}; secrets only go into 0600 files",
            secrets_held.join(", ")
        );
    }
    Ok(Step::File {
        sha256: hex::encode(Sha256::digest(content.as_bytes())),
        size: content.len(),
        path,
        mode,
        owner: "root:root".into(),
        secret,
        component: component.map(str::to_string),
        content: content.into_bytes(),
    })
}

/// Components this host runs: its role is listed and the `when:` condition holds.
pub fn components_for<'a>(
    units: &'a Units,
    cfg: &Config,
    ctx: &tera::Context,
) -> Result<Vec<&'a Component>> {
    let role = cfg.role().as_str();
    let mut out = Vec::new();
    for c in &units.catalog.components {
        if !c.hosts.iter().any(|h| h == role) {
            continue;
        }
        if let Some(expr) = &c.when {
            if !units.condition(expr, ctx)? {
                continue;
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// Build the plan. `store` holds previously generated secrets; missing aio secrets are generated and the
/// store file becomes part of the plan.
pub fn build(
    cfg: &mut Config,
    facts: &Facts,
    units: &Units,
    store: &BTreeMap<String, String>,
) -> Result<Plan> {
    let kept = secrets::fill(cfg, store);
    let settings = cfg.settings();
    let ctx = wiring::context(cfg, facts, &units.catalog.addresses)?;
    let probe = secrets::Probe::new(cfg);
    let comps = components_for(units, cfg, &ctx)?;
    let present: Vec<&str> = comps
        .iter()
        .map(|c| c.unit.as_str())
        .chain(units.catalog.host_units.iter().map(|u| u.unit.as_str()))
        .collect();

    let mut steps = Vec::new();
    let mut warnings = cfg.warnings.clone();
    warnings.extend(facts.warnings.iter().cloned());

    // Packages: for the detected family, or every family when the OS is unknown (config-only plan).
    let role = cfg.role().as_str();
    let family = match facts.os.family {
        PkgFamily::Apt => Some("apt"),
        PkgFamily::Dnf => Some("dnf"),
        PkgFamily::Unknown => None,
    };
    let mut by_family = BTreeMap::new();
    for (fam, lists) in &units.catalog.packages {
        if family.is_some_and(|f| f != fam) {
            continue;
        }
        let mut names: Vec<String> = lists.get("all").cloned().unwrap_or_default();
        names.extend(lists.get(role).cloned().unwrap_or_default());
        by_family.insert(fam.clone(), names);
    }
    steps.push(Step::Packages { by_family });

    for d in &units.catalog.directories {
        steps.push(Step::Directory {
            path: d.path.clone(),
            mode: parse_mode(&d.mode)?,
            owner: "root:root".into(),
        });
    }

    for f in &units.catalog.host_files {
        if let Some(w) = &f.when {
            if !units.condition(w, &ctx)? {
                continue;
            }
        }
        steps.push(rendered(
            units,
            &probe,
            &f.template,
            &ctx,
            f.path.clone(),
            parse_mode(&f.mode)?,
            None,
        )?);
    }
    if !kept.is_empty() {
        let held: Vec<&str> = kept.keys().map(String::as_str).collect();
        steps.push(file_step(
            format!("/{}", secrets::STORE_PATH),
            0o600,
            secrets::serialize(&kept),
            None,
            &held,
        )?);
    }

    let mut planned = Vec::new();
    let mut images: Vec<(String, Vec<String>)> = Vec::new();
    for c in &comps {
        // The catalog names the key; a key the config does not know takes the catalog's default.
        let image = cfg
            .text(&c.image)
            .or(c.image_default.as_deref())
            .unwrap_or_default()
            .to_string();
        let mut files = Vec::new();
        let mut cctx = ctx.clone();
        let env_path = c.env.as_ref().map(|e| format!("{ENV_DIR}/{e}"));
        cctx.insert("unit", &c.unit);
        cctx.insert("component", &c.name);
        cctx.insert("container", &c.container);
        cctx.insert("image", &image);
        cctx.insert("env_file", &env_path.clone().unwrap_or_default());
        cctx.insert(
            "after",
            &c.after
                .iter()
                .filter(|u| present.contains(&u.as_str()))
                .collect::<Vec<_>>(),
        );
        cctx.insert(
            "wants",
            &c.wants
                .iter()
                .filter(|u| present.contains(&u.as_str()))
                .collect::<Vec<_>>(),
        );

        if let (Some(env), Some(path)) = (&c.env, &env_path) {
            steps.push(rendered(
                units,
                &probe,
                &format!("{env}.tera"),
                &cctx,
                path.clone(),
                0o600,
                Some(&c.name),
            )?);
            files.push(path.clone());
        }
        for f in &c.files {
            if let Some(w) = &f.when {
                if !units.condition(w, &cctx)? {
                    continue;
                }
            }
            steps.push(rendered(
                units,
                &probe,
                &f.template,
                &cctx,
                f.path.clone(),
                parse_mode(&f.mode)?,
                Some(&c.name),
            )?);
            files.push(f.path.clone());
        }
        let unit_path = format!("{UNIT_DIR}/{}", c.unit);
        let held = probe.secrets_read(units, &c.template, &cctx)?;
        let unit_text = normalize_unit(&units.render(&c.template, &cctx)?);
        steps.push(file_step(
            unit_path.clone(),
            0o644,
            unit_text,
            Some(&c.name),
            &held,
        )?);
        files.insert(0, unit_path);
        if c.tls {
            // It serves the TLS pair: a new certificate means a restart.
            files.push(format!("{}/cert.pem", wiring::CERTS_LOCATION));
        }

        match images.iter_mut().find(|(r, _)| *r == image) {
            Some((_, users)) => users.push(c.name.clone()),
            None => images.push((image.clone(), vec![c.name.clone()])),
        }
        let probe = match &c.probe {
            Some(p) => Some(probe_for(units, p, &c.container, &cctx)?),
            None => None,
        };
        planned.push(PlannedComponent {
            name: c.name.clone(),
            unit: c.unit.clone(),
            image,
            files,
            optional: c.optional,
            container: c.container.clone(),
            probe,
            calls: c.calls.clone(),
            dump_before_upgrade: c.dump_before_upgrade,
        });
    }

    let lan = facts.private_ip.map(|i| i.to_string()).unwrap_or_default();
    let wan = ctx
        .get("omni_ip_wan")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let certs = wiring::CERTS_LOCATION;
    let tls = match settings.certs.as_str() {
        "custom" => Step::Tls {
            source: "custom".into(),
            cert: format!("{certs}/cert.pem"),
            key: format!("{certs}/key.pem"),
            sans: Vec::new(),
            from: Some((
                settings.cert_file_name.clone().unwrap_or_default(),
                settings.key_file_name.clone().unwrap_or_default(),
            )),
        },
        _ => {
            let mut sans: Vec<String> = settings.fqdn.clone().into_iter().collect();
            sans.push(lan.clone());
            if wan != lan {
                sans.push(wan.clone());
            }
            Step::Tls {
                source: "selfsigned".into(),
                cert: format!("{certs}/cert.pem"),
                key: format!("{certs}/key.pem"),
                sans,
                from: None,
            }
        }
    };
    if comps.iter().any(|c| c.tls) {
        steps.push(tls);
    }
    steps.push(Step::Timezone {
        tz: settings.TZ.clone(),
    });
    // The backup schedule (backup_hours or cron_backup_hh): its timer and service, the timer enabled
    // and started with the host units below.
    let schedule = crate::backup::schedule::units(&settings);
    for (i, (path, content)) in schedule.iter().enumerate() {
        let held = probe.secrets_generated(cfg, |s| {
            crate::backup::schedule::units(s)
                .get(i)
                .map(|u| u.1.clone())
                .unwrap_or_default()
        });
        steps.push(file_step(
            path.clone(),
            0o644,
            content.clone(),
            None,
            &held,
        )?);
    }
    let tasks = tasks_for(units, cfg, &ctx, &comps, &steps)?;
    for (_, t) in &tasks {
        if let Some(image) = t.action.image() {
            let user = format!("task {}", t.name);
            match images.iter_mut().find(|(r, _)| r == image) {
                Some((_, users)) => users.push(user),
                None => images.push((image.to_string(), vec![user])),
            }
        }
    }
    for (reference, components) in images {
        steps.push(Step::Image {
            reference,
            components,
        });
    }
    steps.push(Step::DaemonReload);
    let mut enable: Vec<String> = Vec::new();
    for hu in &units.catalog.host_units {
        if units.condition(&hu.when, &ctx)? {
            enable.push(hu.unit.clone());
        }
    }
    if !schedule.is_empty() {
        enable.push(crate::backup::schedule::TIMER.to_string());
    }
    enable.extend(comps.iter().map(|c| c.unit.clone()));
    steps.push(Step::Enable { units: enable });
    let mut tasks = tasks.into_iter().peekable();
    for (i, c) in comps.iter().enumerate() {
        while let Some((_, t)) = tasks.next_if(|(at, _)| *at == i) {
            steps.push(Step::Task(t));
        }
        steps.push(Step::Start {
            unit: c.unit.clone(),
            component: c.name.clone(),
        });
    }
    steps.extend(tasks.map(|(_, t)| Step::Task(t)));

    Ok(Plan {
        host: HostSummary {
            role: role.to_string(),
            layout: if cfg.role().is_cluster() {
                "cluster".into()
            } else {
                "aio".into()
            },
            private_ip: lan,
            public_ip: wan,
            infra_env: facts.infra_env.clone(),
            nic: facts.nic.clone(),
        },
        components: planned,
        steps,
        warnings,
    })
}

/// A component's probe with its templates rendered for this host.
fn probe_for(
    units: &Units,
    p: &crate::catalog::tasks::ProbeSpec,
    container: &str,
    ctx: &tera::Context,
) -> Result<Probe> {
    let deadline_s = p.deadline_s;
    Ok(if let Some(address) = &p.tcp {
        Probe::Tcp {
            address: units.render_str(address, ctx)?,
            deadline_s,
        }
    } else if let Some(url) = &p.http {
        Probe::Http {
            url: units.render_str(url, ctx)?,
            status: p.status.unwrap_or(200),
            deadline_s,
        }
    } else if let Some(address) = &p.postgres {
        let field = |v: &Option<String>| units.render_str(v.as_deref().unwrap_or_default(), ctx);
        Probe::Postgres {
            address: units.render_str(address, ctx)?,
            user: field(&p.user)?,
            database: field(&p.database)?,
            deadline_s,
        }
    } else if let Some(address) = &p.redis {
        Probe::Redis {
            address: units.render_str(address, ctx)?,
            deadline_s,
        }
    } else {
        let command = p
            .exec
            .iter()
            .flatten()
            .map(|w| units.render_str(w, ctx))
            .collect::<Result<Vec<_>>>()?;
        Probe::Exec {
            container: container.to_string(),
            command,
            deadline_s,
        }
    })
}

/// The host's tasks, each with the index of the component it must precede in start order (the
/// first of its `before:` on this host; after every start when none is here).
fn tasks_for(
    units: &Units,
    cfg: &Config,
    ctx: &tera::Context,
    comps: &[&Component],
    steps: &[Step],
) -> Result<Vec<(usize, PlannedTask)>> {
    let role = cfg.role().as_str();
    let settings = cfg.settings();
    let here = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| comps.iter().any(|c| &c.name == *n))
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    for t in &units.catalog.tasks {
        if !t.hosts.iter().any(|h| h == role) {
            continue;
        }
        if let Some(expr) = &t.when {
            if !units.condition(expr, ctx)? {
                continue;
            }
        }
        let (after, before) = (here(&t.after), here(&t.before));
        let at = before
            .iter()
            .filter_map(|b| comps.iter().position(|c| &c.name == b))
            .min()
            .unwrap_or(comps.len());
        if let Some(late) = after.iter().find(|a| {
            comps
                .iter()
                .position(|c| &c.name == *a)
                .is_some_and(|i| i >= at)
        }) {
            bail!(
                "units/catalog.yaml: task {}: it runs after {late}, which starts after a component it must precede",
                t.name
            );
        }
        let (action, secrets): (TaskAction, Vec<String>) = if let Some(ct) = &t.container {
            let image = cfg
                .text(&ct.image)
                .or(ct.image_default.as_deref())
                .unwrap_or_default()
                .to_string();
            let env_file = ct.env.as_ref().map(|e| format!("{ENV_DIR}/{e}"));
            if let Some(f) = &env_file {
                let planned = steps
                    .iter()
                    .any(|s| matches!(s, Step::File { path, .. } if path == f));
                if !planned {
                    bail!(
                        "units/catalog.yaml: task {}: env file {f} is not written on a {role} host",
                        t.name
                    );
                }
            }
            let render = |w: &String| units.render_str(w, ctx);
            (
                TaskAction::Container {
                    image,
                    command: ct.command.iter().map(render).collect::<Result<_>>()?,
                    env_file,
                    volumes: ct.volumes.iter().map(render).collect::<Result<_>>()?,
                },
                Vec::new(),
            )
        } else {
            let secret_key = settings
                .bucket_secret_key
                .clone()
                .unwrap_or_else(|| crate::config::Secret::new(""));
            let root_password = settings
                .s3_http_admin_pass
                .clone()
                .unwrap_or_else(|| crate::config::Secret::new(""));
            let secrets = vec![
                secret_key.expose().to_string(),
                root_password.expose().to_string(),
            ];
            (
                TaskAction::S3Bootstrap {
                    endpoint: "http://127.0.0.1:9000".into(),
                    region: settings.bucket_region.clone(),
                    bucket: settings.bucket_name.clone(),
                    access_key: settings.bucket_access_key.clone(),
                    secret_key,
                    root_user: settings.s3_http_admin_user.clone(),
                    root_password,
                },
                secrets,
            )
        };
        // Secrets serialize as <redacted>: they enter the fingerprint through their own hash, and the
        // fingerprint only lives in state.json (0600 root).
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&action)?);
        for s in &secrets {
            h.update(Sha256::digest(s.as_bytes()));
        }
        out.push((
            at,
            PlannedTask {
                name: t.name.clone(),
                description: t.description.clone(),
                run: t.run,
                after_restore: t.after_restore,
                after,
                before,
                timeout_s: t.timeout_s,
                attempts: t.attempts,
                retry_delay_s: t.retry_delay_s,
                action,
                fingerprint: hex::encode(h.finalize()),
                notice: t.notice.clone(),
            },
        ));
    }
    out.sort_by_key(|(at, _)| *at);
    Ok(out)
}

/// Tidy a rendered unit: no trailing spaces, no blank line inside a `\` continuation (systemd would end
/// the command there), at most one blank line in a row, exactly one final newline.
pub fn normalize_unit(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end) {
        let prev = out.last().copied();
        if line.is_empty() && (prev.is_none_or(|p| p.is_empty() || p.ends_with('\\'))) {
            continue;
        }
        if line.starts_with('[') && prev.is_some_and(|p| !p.is_empty()) {
            out.push("");
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::normalize_unit;

    #[test]
    fn normalize() {
        let t = "[Unit]\nA=1  \n\n\n[Service]\nExecStart=/bin/x \\\n\n    --y \\\n    z\n[Install]\nW=1\n\n";
        assert_eq!(
            normalize_unit(t),
            "[Unit]\nA=1\n\n[Service]\nExecStart=/bin/x \\\n    --y \\\n    z\n\n[Install]\nW=1\n"
        );
    }
}
