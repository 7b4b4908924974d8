//! `omlboot bake`: prepare an image (Packer, a golden VM) so its first boot only writes files and
//! starts units.
//!
//! Baked: the role's OS packages, its container images, the omlboot binary and an enabled
//! `omlboot-firstboot.service`. Not baked: anything that depends on the final host (addresses,
//! passwords, TLS key, env files). Then the image is cleaned for cloning: an empty machine-id, no
//! cloud-init instance, no omlboot state, no secrets, no SSH host keys (when cloud-init will make
//! new ones), so every clone is a new instance that provisions itself.
use crate::config::schema::{SecretPolicy, KEYS};
use crate::config::{key, Config, Origin, Value};
use crate::fsutil::{write_atomic, Written};
use crate::plan::{Plan, Step};
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

pub const FIRSTBOOT_UNIT: &str = "omlboot-firstboot.service";
pub const FIRSTBOOT_UNIT_TEXT: &str = include_str!("../units/host/omlboot-firstboot.service");
/// Where the binary goes: what the first-boot unit and the shipped user-data call.
pub const BINARY_PATH: &str = "usr/local/bin/omlboot";

/// Placeholder for values a bake cannot know and does not use (nothing host-specific is written):
/// the cluster's addresses and passwords, this host's address.
const PLACEHOLDER_IP: &str = "127.0.0.1";

/// Fill what plan building needs but a bake never writes, so the plan's package and image steps
/// can be computed from the operator's config (image tags, loki_host, external postgres...).
pub fn fill_placeholders(cfg: &mut Config) {
    let derived = Origin::Derived("bake placeholder");
    for k in [key::data_host, key::voice_host, key::application_host] {
        if cfg.get(k).is_none() && cfg.role().is_cluster() {
            cfg.set(k, Value::Text(PLACEHOLDER_IP.into()), derived.clone());
        }
    }
    if cfg.get(key::omni_ip_lan).is_none() {
        let ip = cfg
            .role()
            .host_key()
            .and_then(|k| cfg.text(k).map(str::to_string))
            .unwrap_or_else(|| PLACEHOLDER_IP.into());
        cfg.set(key::omni_ip_lan, Value::Text(ip), derived.clone());
    }
    if cfg.get(key::infra_env).is_none() {
        cfg.set(key::infra_env, Value::Text("lan".into()), derived.clone());
    }
    let s = cfg.settings();
    if matches!(s.infra_env.as_deref(), Some("cloud" | "nat")) && s.nat_ip_addr.is_none() {
        cfg.set(
            key::nat_ip_addr,
            Value::Text(PLACEHOLDER_IP.into()),
            derived.clone(),
        );
    }
    if cfg.role().is_cluster() {
        for key in KEYS.iter().filter(|k| k.secret == SecretPolicy::Generated) {
            if cfg.get(key.name).is_none() {
                cfg.set(
                    key.name,
                    Value::Text("bake-placeholder".into()),
                    derived.clone(),
                );
            }
        }
    }
}

/// One thing bake did to the image, for the progress lines and the summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Action {
    pub what: String,
    pub outcome: &'static str,
}

fn action(what: impl Into<String>, outcome: &'static str) -> Action {
    Action {
        what: what.into(),
        outcome,
    }
}

/// Copy `binary` to /usr/local/bin/omlboot under `root` (0755), unless it already is that file.
pub fn install_binary(root: &Path, binary: &Path) -> Result<Action> {
    let dest = root.join(BINARY_PATH);
    let content = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let w = write_atomic(&dest, &content, 0o755)?;
    Ok(action(
        format!("binary /{BINARY_PATH}"),
        if w == Written::Unchanged {
            "unchanged"
        } else {
            "changed"
        },
    ))
}

/// Write the first-boot unit under `root`. Enabling is separate: over D-Bus on a live host,
/// by symlink in an offline root.
pub fn install_firstboot_unit(root: &Path) -> Result<Action> {
    let path = root.join("etc/systemd/system").join(FIRSTBOOT_UNIT);
    std::fs::create_dir_all(path.parent().unwrap())?;
    let w = write_atomic(&path, FIRSTBOOT_UNIT_TEXT.as_bytes(), 0o644)?;
    Ok(action(
        format!("file /etc/systemd/system/{FIRSTBOOT_UNIT}"),
        if w == Written::Unchanged {
            "unchanged"
        } else {
            "changed"
        },
    ))
}

/// `systemctl enable` for an image that is not running: the symlink [Install] asks for.
pub fn enable_offline(root: &Path) -> Result<Action> {
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    let link = wants.join(FIRSTBOOT_UNIT);
    let target = PathBuf::from("/etc/systemd/system").join(FIRSTBOOT_UNIT);
    if std::fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
        return Ok(action(format!("enable {FIRSTBOOT_UNIT}"), "unchanged"));
    }
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link)
        .with_context(|| format!("symlink {}", link.display()))?;
    Ok(action(format!("enable {FIRSTBOOT_UNIT}"), "changed"))
}

/// What `omlboot run` does before it provisions: the first-boot unit installed and enabled (by symlink, so
/// systemd sees it at the next boot; fsynced), so a run cut short by a power loss or a reset goes on at the
/// next boot. cloud-init would not do it: it writes a module's once-per-instance semaphore before running the
/// module, so after a power cut in the middle of `runcmd` the same instance never runs it again. Once the run
/// is done the unit stays, as on a baked image: later boots run `omlboot run`, which finds the instance
/// provisioned. True when something was written.
pub fn arm_firstboot_unit(root: &Path) -> Result<bool> {
    let unit = install_firstboot_unit(root)?;
    let enable = enable_offline(root)?;
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::File::open(&wants)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of {}", wants.display()))?;
    Ok(unit.outcome == "changed" || enable.outcome == "changed")
}

/// Everything after the packages and images: install this binary and the first-boot unit, enable it
/// (over D-Bus on a live root; by symlink in an offline root, or when systemd is not reachable, as in
/// a chroot), then, with `clean`, clean the image for cloning.
pub async fn finish(root: &Path, exe: &Path, plan: &Plan, clean: bool) -> Result<Vec<Action>> {
    let mut actions = vec![install_binary(root, exe)?, install_firstboot_unit(root)?];
    let live = crate::target::Target::from_root(root).is_live();
    let over_dbus = if live {
        enable_over_dbus()
            .await
            .map_err(|e| {
                eprintln!(
                    "warning: enabling over D-Bus failed ({e:#}); writing the symlink instead"
                )
            })
            .ok()
    } else {
        None
    };
    actions.push(match over_dbus {
        Some(a) => a,
        None => enable_offline(root)?,
    });
    if clean {
        let tls: Vec<String> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Tls { cert, key, .. } => Some([cert.clone(), key.clone()]),
                _ => None,
            })
            .flatten()
            .collect();
        actions.extend(self::clean(root, &tls, live)?);
    }
    Ok(actions)
}

async fn enable_over_dbus() -> Result<Action> {
    let sd = crate::apply::systemd::Systemd::system().await?;
    sd.daemon_reload().await?;
    let changes = sd.enable(&[FIRSTBOOT_UNIT.to_string()]).await?;
    Ok(action(
        format!("enable {FIRSTBOOT_UNIT}"),
        if changes.is_empty() {
            "unchanged"
        } else {
            "changed"
        },
    ))
}

/// Files that belong to one instance and must not be cloned. Paths relative to the root.
/// The TLS pair is included: a private key shared by every clone is no key at all.
const INSTANCE_FILES: &[&str] = &[
    "var/lib/omlboot/state.json",
    "var/lib/omlboot/secrets.yaml",
    "var/lib/dbus/machine-id",
    "var/log/cloud-init.log",
    "var/log/cloud-init-output.log",
];

/// Clean `root` for cloning. `cloud_init_clean` runs `cloud-init clean --logs` when true (a live
/// host); otherwise cloud-init's instance state is removed by hand. `tls_files` are the plan's
/// certificate and key paths.
pub fn clean(root: &Path, tls_files: &[String], cloud_init_clean: bool) -> Result<Vec<Action>> {
    let mut done = Vec::new();
    // An empty (not missing) machine-id: systemd makes a new one at boot and treats it as a first boot.
    let mid = root.join("etc/machine-id");
    if std::fs::metadata(&mid).map(|m| m.len() > 0).unwrap_or(true) {
        std::fs::create_dir_all(mid.parent().unwrap())?;
        write_atomic(&mid, b"", 0o444)?;
        done.push(action("empty /etc/machine-id", "changed"));
    } else {
        done.push(action("empty /etc/machine-id", "unchanged"));
    }
    for rel in INSTANCE_FILES.iter().map(|s| s.to_string()).chain(
        tls_files
            .iter()
            .map(|s| s.trim_start_matches('/').to_string()),
    ) {
        let p = root.join(&rel);
        // dbus's machine-id is usually a symlink to /etc/machine-id: leave that alone.
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => continue,
            Ok(_) => {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
                done.push(action(format!("remove /{rel}"), "changed"));
            }
            Err(_) => {}
        }
    }
    let cloud_init = root.join("usr/bin/cloud-init").exists();
    if cloud_init {
        if cloud_init_clean {
            let out = std::process::Command::new("cloud-init")
                .args(["clean", "--logs"])
                .stdin(std::process::Stdio::null())
                .output()
                .context("running cloud-init clean")?;
            anyhow::ensure!(
                out.status.success(),
                "cloud-init clean --logs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            done.push(action("cloud-init clean --logs", "changed"));
        } else {
            // What `cloud-init clean` removes: everything under /var/lib/cloud but the seed.
            let dir = root.join("var/lib/cloud");
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_name() == "seed" {
                        continue;
                    }
                    let p = e.path();
                    let r = if e.file_type()?.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    r.with_context(|| format!("removing {}", p.display()))?;
                    done.push(action(
                        format!("remove /var/lib/cloud/{}", e.file_name().to_string_lossy()),
                        "changed",
                    ));
                }
            }
        }
        // cloud-init's ssh module makes new host keys on a new instance; without cloud-init,
        // removing them would leave sshd unable to start, so they stay.
        if let Ok(entries) = std::fs::read_dir(root.join("etc/ssh")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("ssh_host_") {
                    std::fs::remove_file(e.path())?;
                    done.push(action(format!("remove /etc/ssh/{name}"), "changed"));
                }
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn clean_removes_instance_identity_and_keeps_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        touch(r, "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        touch(r, "var/lib/omlboot/state.json", "{}");
        touch(r, "var/lib/omlboot/secrets.yaml", "x: y");
        touch(r, "etc/omnileads/certs/key.pem", "KEY");
        touch(r, "etc/omnileads/certs/cert.pem", "CERT");
        touch(r, "usr/bin/cloud-init", "");
        touch(r, "var/lib/cloud/instances/i-1/sem/x", "");
        touch(r, "var/lib/cloud/instance", "");
        touch(r, "var/lib/cloud/seed/nocloud/user-data", "keep");
        touch(r, "etc/ssh/ssh_host_ed25519_key", "k");
        touch(r, "etc/ssh/sshd_config", "keep");
        touch(r, "etc/omlboot/config.yaml", "role: aio\n");
        std::fs::create_dir_all(r.join("var/lib/dbus")).unwrap();
        std::os::unix::fs::symlink("/etc/machine-id", r.join("var/lib/dbus/machine-id")).unwrap();

        let tls = vec![
            "/etc/omnileads/certs/cert.pem".to_string(),
            "/etc/omnileads/certs/key.pem".to_string(),
        ];
        let done = clean(r, &tls, false).unwrap();
        assert!(done.iter().all(|a| a.outcome == "changed"), "{done:?}");
        assert_eq!(std::fs::read(r.join("etc/machine-id")).unwrap(), b"");
        for gone in [
            "var/lib/omlboot/state.json",
            "var/lib/omlboot/secrets.yaml",
            "etc/omnileads/certs/key.pem",
            "etc/omnileads/certs/cert.pem",
            "var/lib/cloud/instances",
            "var/lib/cloud/instance",
            "etc/ssh/ssh_host_ed25519_key",
        ] {
            assert!(!r.join(gone).exists(), "{gone} still there");
        }
        for kept in [
            "var/lib/cloud/seed/nocloud/user-data",
            "etc/ssh/sshd_config",
            "etc/omlboot/config.yaml",
        ] {
            assert!(r.join(kept).exists(), "{kept} was removed");
        }
        assert!(std::fs::symlink_metadata(r.join("var/lib/dbus/machine-id"))
            .unwrap()
            .file_type()
            .is_symlink());

        // Cleaning a clean image changes nothing.
        let again = clean(r, &tls, false).unwrap();
        assert_eq!(again, vec![action("empty /etc/machine-id", "unchanged")]);
    }

    #[test]
    fn without_cloud_init_ssh_host_keys_stay() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        touch(r, "etc/ssh/ssh_host_ed25519_key", "k");
        clean(r, &[], false).unwrap();
        assert!(r.join("etc/ssh/ssh_host_ed25519_key").exists());
    }

    #[test]
    fn firstboot_unit_and_binary_are_installed_once() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let bin = r.join("src-binary");
        std::fs::write(&bin, b"\x7fELF...").unwrap();
        assert_eq!(install_binary(r, &bin).unwrap().outcome, "changed");
        assert_eq!(install_binary(r, &bin).unwrap().outcome, "unchanged");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(r.join(BINARY_PATH))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert_eq!(install_firstboot_unit(r).unwrap().outcome, "changed");
        assert_eq!(install_firstboot_unit(r).unwrap().outcome, "unchanged");
        assert_eq!(enable_offline(r).unwrap().outcome, "changed");
        assert_eq!(enable_offline(r).unwrap().outcome, "unchanged");
        let link = r.join("etc/systemd/system/multi-user.target.wants/omlboot-firstboot.service");
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            Path::new("/etc/systemd/system/omlboot-firstboot.service")
        );
    }

    #[test]
    fn placeholders_let_a_cluster_role_plan_without_its_peers() {
        let src = crate::config::Sources {
            file: None,
            env: Default::default(),
            sets: vec![],
            role: Some("voice".into()),
        };
        assert!(
            Config::load(&src).is_err(),
            "voice without peers must not validate for apply"
        );
        let mut cfg = Config::load_for_bake(&src).unwrap();
        fill_placeholders(&mut cfg);
        assert_eq!(cfg.text("omni_ip_lan"), Some(PLACEHOLDER_IP));
        assert!(cfg.missing_generated_secrets().is_empty());
        assert!(crate::facts::Facts::from_config_only(&cfg).is_some());
    }
}
