//! `omlboot bake` for real: `packer build` with packer/omlboot.pkr.hcl (through packer/bake.sh) on the test bed's
//! Debian 12 guest image under TCG, baking role aio with the stand-in images pulled from the registry inside the
//! build VM; then a first boot of the baked qcow2 with the project's cloud-config/aio.yaml, which must install no
//! package and pull no image, and must reach all-active. A sibling test provisions the same user-data from the bare
//! image, for the first-boot time to compare with.
//! VM tests: `tests/e2e/run.sh bake` (they are `#[ignore]` for plain `cargo test`).

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::artifacts::{artifacts, cache_dir, empty_payload, repo_root};
use harness::scenario::{
    assert_units_active, component_units, first_boot_seconds, repo_file, state_json, status_json,
    test_overrides,
};
use harness::{GuestSpec, Lab, UserData};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole `packer build` (boot, cloud-init, upload, bake with ~20 image pulls, shutdown, qcow2 compaction).
const BAKE: Duration = Duration::from_secs(3600);
/// Boot + cloud-init + provisioning of all components under TCG.
const PROVISION: Duration = Duration::from_secs(1500);

/// The first-boot user-data of both tests: cloud-config/aio.yaml as it is, plus the test overrides every VM
/// scenario needs (stand-in image references, no echo services, TCG-sized unit start timeout).
fn aio_user_data() -> UserData {
    UserData::with_overrides(&repo_file("cloud-config/aio.yaml"), &[&test_overrides("")])
}

/// `*_img` key → stand-in reference, from tests/e2e/standins/image-overrides.yaml.
fn standin_images() -> serde_json::Map<String, Value> {
    repo_file("tests/e2e/standins/image-overrides.yaml")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), Value::from(v.trim())))
        .filter(|(k, _)| k.ends_with("_img"))
        .collect()
}

/// What the bake left, as the template's provisioner printed it.
struct Baked {
    qcow2: PathBuf,
    /// /etc/machine-id of the build VM, before bake emptied it.
    machine_id: String,
    /// /etc/machine-id when the provisioner finished (bake empties it for cloning).
    machine_id_after: String,
    /// (image id without "sha256:", "repository:tag") of every image in the baked podman storage.
    images: BTreeSet<(String, String)>,
    seconds: f64,
}

/// Kills a process group (packer, its plugin, QEMU) when dropped: on a timeout or a failed assertion nothing stays.
struct GroupGuard(i32);
impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

fn sh_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs packer/bake.sh on the test bed's root.img and returns the baked image. The build VM boots the test bed's
/// kernel and initrd directly (the root filesystem has no boot loader), gets the payload disk (through a qcow2
/// overlay, so the cached payload stays pristine) for its in-guest registry on 127.0.0.1:5000, and reaches nothing
/// outside (restrict_network). Output and serial log: tests/e2e/.cache/logs/bake.{packer,serial}.log.
fn bake() -> Baked {
    let a = artifacts().expect("e2e artifacts");
    let dir = cache_dir().join("bake");
    let packer_log_path = cache_dir().join("logs/bake.packer.log");
    if std::env::var_os("OMLBOOT_E2E_REUSE_BAKE").is_some() {
        // Iterating on the first-boot checks: take the image and the log of the last successful build.
        let qcow2 = dir.join("out/omlboot-aio.qcow2");
        if qcow2.is_file() {
            eprintln!("e2e: OMLBOOT_E2E_REUSE_BAKE: reusing {}", qcow2.display());
            let lines: Vec<String> = harness::read_to_string_lossy(&packer_log_path)
                .lines()
                .map(String::from)
                .collect();
            return parse_bake(qcow2, &lines, 0.0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let logs = cache_dir().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let serial = logs.join("bake.serial.log");
    let _ = std::fs::remove_file(&serial);

    let overlay = dir.join("payload-overlay.qcow2");
    sh_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&a.payload_img)
            .arg(&overlay),
    );
    // QEMU dies with packer's plugin (its parent) even if packer itself is killed.
    let qemu = Command::new("sh")
        .args(["-c", "command -v qemu-system-x86_64"])
        .output()
        .unwrap();
    let qemu = String::from_utf8_lossy(&qemu.stdout).trim().to_string();
    assert!(!qemu.is_empty(), "qemu-system-x86_64 not found");
    let qemu_wrapper = dir.join("qemu-pdeathsig");
    std::fs::write(
        &qemu_wrapper,
        format!("#!/bin/sh\nexec setpriv --pdeathsig KILL -- {qemu} \"$@\"\n"),
    )
    .unwrap();
    sh_ok(Command::new("chmod").arg("0755").arg(&qemu_wrapper));

    let root_mib = std::fs::metadata(&a.root_img).unwrap().len() >> 20;
    let p = |x: &Path| x.display().to_string();
    let vars = serde_json::json!({
        "base_image": p(&a.root_img),
        "base_image_checksum": "none",
        "omlboot_binary": p(&a.omlboot),
        "role": "aio",
        "images": standin_images(),
        "output_directory": p(&dir.join("out")),
        "disk_size": format!("{root_mib}M"),
        "memory": 3072,
        "cpus": 2,
        "accelerator": "tcg",
        "qemu_binary": p(&qemu_wrapper),
        "restrict_network": true,
        "ssh_timeout": "20m",
        "extra_qemuargs": [
            ["-cpu", "max"],
            ["-kernel", p(&a.kernel)],
            ["-initrd", p(&a.initrd)],
            ["-append", "root=LABEL=rootfs rw console=ttyS0,115200 net.ifnames=1"],
            ["-serial", format!("file:{}", p(&serial))],
            ["-blockdev", format!("driver=qcow2,node-name=e2epayload,file.driver=file,file.filename={}", p(&overlay))],
            ["-device", "virtio-blk-pci,drive=e2epayload"],
        ],
    });
    let var_file = dir.join("e2e.pkrvars.json");
    std::fs::write(&var_file, serde_json::to_string_pretty(&vars).unwrap()).unwrap();

    let t = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo_root().join("packer/bake.sh"))
        .args(["-color=false", "-timestamp-ui"])
        .arg(format!("-var-file={}", var_file.display()))
        .current_dir(&dir)
        .env("PACKER_CACHE_DIR", dir.join("packer_cache"))
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run packer/bake.sh (tests/e2e/setup-host.sh installs packer)");
    let guard = GroupGuard(child.id() as i32);
    // stderr merged into the same log, read on its own thread.
    let stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
            .collect::<Vec<_>>()
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = std::fs::File::create(&packer_log_path).unwrap();
    let mut lines = vec![];
    let deadline = Instant::now() + BAKE;
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => {
                eprintln!("packer: {line}");
                let _ = writeln!(log, "{line}");
                lines.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            drop(guard);
            panic!(
                "packer build not finished after {BAKE:?}; log {}, serial {}\n{}",
                packer_log_path.display(),
                serial.display(),
                harness::read_to_string_lossy(&serial)
            );
        }
    }
    let status = child.wait().unwrap();
    let errs = err_thread.join().unwrap_or_default();
    for l in &errs {
        let _ = writeln!(log, "stderr: {l}");
    }
    drop(guard);
    let seconds = t.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "packer build failed ({status}) after {seconds:.0}s; log {}\n--- stderr ---\n{}\n--- serial log {} ---\n{}",
        packer_log_path.display(),
        errs.join("\n"),
        serial.display(),
        harness::read_to_string_lossy(&serial)
    );

    let qcow2 = dir.join("out/omlboot-aio.qcow2");
    assert!(qcow2.is_file(), "no {} after the build", qcow2.display());
    let _ = std::fs::remove_file(&overlay);
    parse_bake(qcow2, &lines, seconds)
}

/// Reads what the template's provisioner printed ("omlboot-bake: ..." lines) from packer's output.
fn parse_bake(qcow2: PathBuf, lines: &[String], seconds: f64) -> Baked {
    let mark = |what: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split_once(&format!("omlboot-bake: {what}")))
            .map(|(_, rest)| rest.trim().to_string())
            .collect()
    };
    let machine_id = mark("machine-id before bake:")
        .pop()
        .expect("the provisioner prints the build VM's machine-id");
    let machine_id_after = mark("done; /etc/machine-id is now")
        .pop()
        .expect("the provisioner prints the machine-id it leaves")
        .trim_matches('\'')
        .to_string();
    // "omlboot-bake: image REPOSITORY TAG sha256:ID CREATED... SIZE"
    let images: BTreeSet<(String, String)> = mark("image")
        .iter()
        .filter_map(|rest| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            (f.len() >= 3).then(|| {
                (
                    f[2].trim_start_matches("sha256:").to_string(),
                    format!("{}:{}", f[0], f[1]),
                )
            })
        })
        .collect();
    Baked {
        qcow2,
        machine_id,
        machine_id_after,
        images,
        seconds,
    }
}

fn assert_all_active(g: &harness::Guest) {
    let (code, st) = status_json(g);
    assert_eq!((code, st["status"].as_str()), (0, Some("done")), "{st:#}");
    let units = component_units(g);
    assert!(units.len() >= 20, "aio runs every component: {units:?}");
    assert_units_active(g, &units);
}

fn step_outcome(state: &Value, name: &str) -> String {
    state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name)
        .map(|s| s["outcome"].as_str().unwrap_or("").to_string())
        .next_back()
        .unwrap_or_else(|| panic!("no step {name:?} in state.json: {state:#}"))
}

#[test]
#[ignore = "runs packer build and boots VMs; run with tests/e2e/run.sh bake"]
fn bake_aio_with_packer_then_first_boot_installs_and_pulls_nothing() {
    let baked = bake();
    eprintln!("E2E-FIGURE bake-packer-build-seconds={:.0}", baked.seconds);
    assert!(
        !baked.machine_id.is_empty(),
        "the build VM had a machine-id"
    );
    assert_eq!(
        baked.machine_id_after, "",
        "bake leaves /etc/machine-id empty for cloning"
    );
    // First boot of the baked image: the empty payload disk means no omlboot from the payload, no registry
    // (docker-registry.service is skipped) and no bundle, so everything has to come from the image itself.
    let spec = GuestSpec::new("bake-aio", aio_user_data())
        .root_disk(&baked.qcow2)
        .payload_disk(&empty_payload().expect("empty payload"))
        .mem_mb(3072);
    let lab = Lab::boot_one(spec).expect("boot the baked image");
    let g = &lab.guests[0];
    g.expect_cloud_init(PROVISION);
    assert_all_active(g);
    let seconds = first_boot_seconds(g);
    eprintln!("E2E-FIGURE bake-firstboot-seconds={seconds:.0}");

    // Every image the host's plan names was baked in.
    let plan: Value =
        serde_json::from_str(&g.sh("omlboot plan --format json 2>/dev/null")).unwrap();
    let want_refs: BTreeSet<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "image")
        .map(|s| s["reference"].as_str().unwrap().to_string())
        .collect();
    let baked_refs: BTreeSet<String> = baked.images.iter().map(|(_, r)| r.clone()).collect();
    assert!(
        want_refs.len() >= 15 && want_refs.is_subset(&baked_refs),
        "the plan's images {want_refs:?} are not all in the baked image {baked_refs:?}"
    );

    // The baked unit ran omlboot on this boot.
    assert_eq!(
        g.is_enabled("omlboot-firstboot.service").unwrap(),
        "enabled"
    );
    let fb = g.unit("omlboot-firstboot.service").unwrap();
    assert_eq!(fb.result, "success", "{fb:?}");
    assert_eq!(
        fb.raw.get("ExecMainStatus").map(String::as_str),
        Some("0"),
        "{fb:?}\n{}",
        g.journal("omlboot-firstboot.service", 50)
            .unwrap_or_default()
    );
    assert!(
        g.sh("systemctl show -p ExecMainStartTimestampMonotonic --value omlboot-firstboot.service")
            .trim()
            != "0",
        "omlboot-firstboot.service did not run on this boot"
    );

    // No package manager ran and no image was fetched.
    let state = state_json(g);
    let packages = step_outcome(&state, "packages");
    assert!(
        packages == "unchanged" || packages == "skipped",
        "packages step on a baked image: {packages}\n{state:#}"
    );
    assert_eq!(step_outcome(&state, "images"), "done", "{state:#}");
    // (The guest agent journals each command it runs, this one included: hence the grep -v.)
    let fetched = g
        .exec("journalctl -b --no-pager -o cat | grep -v guest-exec | grep -E 'image pulled|image loaded from bundle|packages installed|transient pull failure'; grep -E 'image pulled|image loaded from bundle|packages installed' /var/log/cloud-init-output.log")
        .unwrap();
    assert!(
        fetched.stdout.trim().is_empty(),
        "first boot of a baked image fetched something:\n{}",
        fetched.stdout
    );
    let pm = g
        .exec("boot=$(date -d \"$(uptime -s)\" +%s); for f in /var/log/dpkg.log /var/log/apt/history.log /var/log/apt/term.log; do [ -e \"$f\" ] && [ \"$(stat -c %Y \"$f\")\" -ge \"$boot\" ] && echo \"$f written this boot\"; done; true")
        .unwrap();
    assert!(
        pm.stdout.trim().is_empty(),
        "a package manager ran on the baked image's first boot: {}",
        pm.stdout
    );
    assert_ne!(
        g.unit("docker-registry.service").unwrap().active_state,
        "active",
        "no registry may be reachable on this boot"
    );
    assert!(
        g.sh("ss -Htln 'sport = :5000'").trim().is_empty(),
        "something listens on :5000"
    );
    let now: BTreeSet<(String, String)> = g
        .images()
        .unwrap()
        .iter()
        .flat_map(|i| {
            let id = i["Id"].as_str().unwrap_or("").to_string();
            i["Names"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |n| n.as_str().map(|n| (id.clone(), n.to_string())))
        })
        .collect();
    assert_eq!(
        now, baked.images,
        "podman's images differ from what bake left"
    );

    // A new identity: machine-id regenerated, build login gone, fresh SSH host keys.
    let mid = g.read_file("/etc/machine-id").unwrap().unwrap();
    let mid = mid.trim();
    assert!(
        mid.len() == 32 && mid != baked.machine_id,
        "machine-id {mid:?} (bake's was {:?})",
        baked.machine_id
    );
    assert!(
        !g.exec("id packer").unwrap().ok(),
        "the build user is still in the image"
    );
    assert!(
        !g.sh("ls /etc/ssh/ | grep '^ssh_host_.*_key$' || true")
            .trim()
            .is_empty(),
        "cloud-init made new SSH host keys"
    );
}

#[test]
#[ignore = "boots a VM; run with tests/e2e/run.sh bake"]
fn bake_reference_bare_image_first_boot_time() {
    // The same user-data on the bare test bed image: omlboot from the payload disk, images pulled from the guest's
    // registry, packages only confirmed (the image already holds them).
    let lab = Lab::boot_one(GuestSpec::new("bare-aio", aio_user_data()).mem_mb(3072))
        .expect("boot the bare image");
    let g = &lab.guests[0];
    g.expect_cloud_init(PROVISION);
    assert_all_active(g);
    let seconds = first_boot_seconds(g);
    let state = state_json(g);
    let images_ms: u64 = state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "images")
        .filter_map(|s| s["duration_ms"].as_u64())
        .sum();
    eprintln!("E2E-FIGURE bare-firstboot-seconds={seconds:.0}");
    eprintln!(
        "E2E-FIGURE bare-images-step-seconds={:.0}",
        images_ms as f64 / 1000.0
    );
}
