//! omlboot's VM end-to-end test bed (see tests/e2e/README.md).
//!
//! [`Lab::boot`] starts one or more Debian 12 guests under TCG QEMU, each with a NoCloud seed built from a given
//! user-data, the omlboot binary and the stand-in images on a payload disk, and the guest agent as exec channel.
//! [`Guest::wait_cloud_init`] waits for cloud-init with a deadline and returns a [`Failure`] whose Display carries
//! the serial log. Guests are killed when dropped (and by the kernel if the test process dies).
#![allow(dead_code)]
// A Failure carries the serial log and is built at most once per test; boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod artifacts;
pub mod net;
pub mod qga;
pub mod scenario;
pub mod seed;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

pub use qga::ExecOutput;
pub use seed::{Nic, UserData};

/// One guest to boot.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub name: String,
    pub user_data: UserData,
    pub nics: Vec<Nic>,
    pub mem_mb: u32,
    pub cpus: u32,
    /// Attach the payload disk (omlboot binary + stand-ins), mounted at /mnt/e2e. Default true.
    pub payload: bool,
    /// meta-data instance-id; default `e2e-<name>-<pid>-<n>` (new each boot, so cloud-init runs as first boot).
    pub instance_id: Option<String>,
    /// Root disk to boot instead of the test bed's root.img (raw or qcow2, e.g. a Packer-baked image), still with
    /// the test bed's kernel and initrd and `snapshot=on`. Default None.
    pub root_disk: Option<PathBuf>,
    /// Payload disk to attach instead of the built one (see [`artifacts::empty_payload`]). Default None.
    pub payload_disk: Option<PathBuf>,
    /// Boot the root disk through a qcow2 overlay in the lab's temp dir instead of `snapshot=on`, so what the
    /// guest writes outlives QEMU and [`Guest::boot_again`] boots the same disk. Default false.
    pub persistent_root: bool,
    /// Prepare the guest but do not start QEMU: [`Guest::start`] does, later, with the user-data it is
    /// given then (a host that must boot after something the test makes, e.g. a backup to restore).
    pub deferred: bool,
}

impl GuestSpec {
    pub fn new(name: &str, user_data: UserData) -> Self {
        GuestSpec {
            name: name.into(),
            user_data,
            nics: vec![Nic::User],
            mem_mb: 2048,
            cpus: 2,
            payload: true,
            instance_id: None,
            root_disk: None,
            payload_disk: None,
            persistent_root: false,
            deferred: false,
        }
    }
    pub fn nics(mut self, nics: Vec<Nic>) -> Self {
        self.nics = nics;
        self
    }
    pub fn mem_mb(mut self, m: u32) -> Self {
        self.mem_mb = m;
        self
    }
    pub fn cpus(mut self, c: u32) -> Self {
        self.cpus = c;
        self
    }
    pub fn without_payload(mut self) -> Self {
        self.payload = false;
        self
    }
    /// Boots `path` (raw or qcow2, detected from its header) as the root disk instead of the test bed's root.img.
    pub fn root_disk(mut self, path: &Path) -> Self {
        self.root_disk = Some(path.to_path_buf());
        self
    }
    /// Attaches `path` (raw ext4, label `e2epayload`) as the payload disk instead of the built one.
    pub fn payload_disk(mut self, path: &Path) -> Self {
        self.payload = true;
        self.payload_disk = Some(path.to_path_buf());
        self
    }
    /// Keeps what the guest writes to its root disk across boots (see [`GuestSpec::persistent_root`]).
    pub fn persistent_root(mut self) -> Self {
        self.persistent_root = true;
        self
    }
    /// Boot it later, with [`Guest::start`] (see [`GuestSpec::deferred`]).
    pub fn deferred(mut self) -> Self {
        self.deferred = true;
        self
    }
}

/// Creates `overlay`, a qcow2 whose backing file is `base` (opened read-only by QEMU, never written).
pub fn create_overlay(base: &Path, overlay: &Path) -> Result<()> {
    let base = std::fs::canonicalize(base).with_context(|| format!("{}", base.display()))?;
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-b"])
        .arg(&base)
        .args(["-F", disk_format(&base)])
        .arg(overlay)
        .output()
        .context("run qemu-img (tests/e2e/setup-host.sh installs qemu-utils)")?;
    if !out.status.success() {
        bail!(
            "qemu-img create {}: {}",
            overlay.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// "qcow2" when the file starts with the qcow2 magic, else "raw".
pub fn disk_format(path: &Path) -> &'static str {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let is_qcow2 = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|_| &magic == b"QFI\xfb")
        .unwrap_or(false);
    if is_qcow2 {
        "qcow2"
    } else {
        "raw"
    }
}

/// Guests booted together, plus the private network hub joining them.
pub struct Lab {
    pub guests: Vec<Guest>,
    _hub: Option<net::Hub>,
    _dir: tempfile::TempDir,
}

/// A running guest. Dropping it kills QEMU.
pub struct Guest {
    pub name: String,
    /// The serial console of the current boot (earlier boots: see [`Guest::boot_again`]).
    pub serial_log: PathBuf,
    child: Mutex<Option<Child>>,
    qga: Mutex<qga::Qga>,
    started: Instant,
    cloud_init_done: Mutex<bool>,
    launch: Launch,
    /// Boots so far (1 after [`Lab::boot`]).
    boots: u32,
}

/// How a guest's QEMU was started, kept to start it again with the same disks and sockets.
struct Launch {
    /// Arguments of `setpriv` (which execs QEMU, so the child's pid is QEMU's).
    args: Vec<std::ffi::OsString>,
    /// The guest's directory in the lab's temp dir (seed, overlays, sockets, QEMU's output).
    dir: PathBuf,
    qga_sock: PathBuf,
    /// Unix sockets QEMU binds (the private network's `local.path`), removed before a new start.
    bound_sockets: Vec<PathBuf>,
    /// meta-data and network-config of the seed ISO, to write it again with new user-data.
    seed_meta: String,
    seed_netcfg: String,
}

impl Launch {
    /// Starts QEMU and waits for its guest-agent socket.
    fn spawn(&self, name: &str) -> Result<Child> {
        for p in self.bound_sockets.iter().chain([&self.qga_sock]) {
            let _ = std::fs::remove_file(p);
        }
        let child = Command::new("setpriv")
            .args(&self.args)
            .env("TMPDIR", &self.dir) // snapshot=on overlays
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(
                self.dir.join("qemu.out"),
            )?))
            .stderr(Stdio::from(std::fs::File::create(
                self.dir.join("qemu.err"),
            )?))
            .spawn()
            .context("start qemu-system-x86_64 (tests/e2e/setup-host.sh installs it)")?;
        // The QGA socket appears once QEMU is up.
        let t = Instant::now();
        while !self.qga_sock.exists() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut child = child;
        if let Ok(Some(code)) = child.try_wait() {
            let err = std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default();
            bail!("qemu for {name:?} exited at once ({code}): {err}");
        }
        Ok(child)
    }
}

/// What cloud-init said once it finished without errors.
#[derive(Debug, Clone)]
pub struct CloudInit {
    pub status_long: String,
    pub result_json: Value,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FailureKind {
    /// cloud-init finished with errors (e.g. a runcmd command exited non-zero).
    CloudInitError,
    /// The deadline passed first.
    Timeout,
    /// QEMU exited (crash, panic=-1 reboot, power_state poweroff) before cloud-init was seen finished.
    GuestExited,
    /// The harness could not start the guest.
    Harness,
}

/// A failed provisioning, with everything needed to understand it. Display includes the serial log.
#[derive(Debug, Clone)]
pub struct Failure {
    pub guest: String,
    pub kind: FailureKind,
    pub message: String,
    pub status_long: Option<String>,
    pub result_json: Option<Value>,
    pub cloud_init_output: Option<String>,
    pub serial_log_path: PathBuf,
    pub serial_log: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "guest {:?}: {:?}: {}",
            self.guest, self.kind, self.message
        )?;
        if let Some(s) = &self.status_long {
            writeln!(f, "---- cloud-init status --long ----\n{}", s.trim_end())?;
        }
        if let Some(r) = &self.result_json {
            writeln!(
                f,
                "---- /run/cloud-init/result.json ----\n{}",
                serde_json::to_string_pretty(r).unwrap_or_default()
            )?;
        }
        if let Some(o) = &self.cloud_init_output {
            writeln!(
                f,
                "---- /var/log/cloud-init-output.log (last 80 lines) ----\n{}",
                o.trim_end()
            )?;
        }
        writeln!(
            f,
            "---- serial log ({}) ----",
            self.serial_log_path.display()
        )?;
        writeln!(f, "{}", self.serial_log.trim_end())?;
        write!(f, "---- end of serial log of {:?} ----", self.guest)
    }
}

impl std::error::Error for Failure {}

fn free_name(base: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "e2e-{base}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Lab {
    /// Boots all guests at once (they are started from the calling thread; QEMU dies with that thread).
    /// Guests that have a [`Nic::Private`] share one private segment.
    pub fn boot(specs: Vec<GuestSpec>) -> Result<Lab> {
        let a = artifacts::artifacts()?;
        let dir = tempfile::Builder::new()
            .prefix("omlboot-e2e-")
            .tempdir()
            .context("tempdir")?;
        let logs = artifacts::cache_dir().join("logs");
        std::fs::create_dir_all(&logs)?;
        let private: Vec<usize> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.nics.iter().any(|n| matches!(n, Nic::Private { .. })))
            .map(|(i, _)| i)
            .collect();
        let (hub, ports) = if private.is_empty() {
            (None, vec![])
        } else {
            let (h, p) = net::Hub::start(&dir.path().join("net"), private.len())?;
            (Some(h), p)
        };
        let mut guests = vec![];
        for (gi, spec) in specs.iter().enumerate() {
            let gdir = dir.path().join(&spec.name);
            std::fs::create_dir_all(&gdir)?;
            let mut macs = vec![];
            let mut names = vec![];
            let mut netargs: Vec<String> = vec![];
            let mut bound_sockets: Vec<PathBuf> = vec![];
            for (ni, nic) in spec.nics.iter().enumerate() {
                let mac = format!("52:54:00:e2:{:02x}:{:02x}", gi, ni);
                let slot = 3 + ni;
                names.push(format!("enp0s{slot}"));
                match nic {
                    Nic::User | Nic::UserDhcp => {
                        netargs.push("-netdev".into());
                        netargs.push(format!("user,id=n{ni},restrict=on"));
                    }
                    Nic::Private { .. } => {
                        let pi = private.iter().position(|&x| x == gi).unwrap();
                        let port = &ports[pi];
                        bound_sockets.push(port.guest_sock.clone());
                        netargs.push("-netdev".into());
                        netargs.push(format!(
                            "dgram,id=n{ni},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                            port.guest_sock.display(),
                            port.hub_sock.display()
                        ));
                    }
                }
                netargs.push("-device".into());
                netargs.push(format!(
                    "virtio-net-pci,netdev=n{ni},mac={mac},addr={slot:#x},romfile="
                ));
                macs.push(mac);
            }
            let instance_id = spec
                .instance_id
                .clone()
                .unwrap_or_else(|| free_name(&spec.name));
            let iso = gdir.join("seed.iso");
            let seed_meta = seed::meta_data(&instance_id, &spec.name);
            let seed_netcfg = seed::network_config(&spec.nics, &macs, &names);
            seed::make_seed_iso(
                &gdir.join("seed"),
                &iso,
                &spec.user_data.render(),
                &seed_meta,
                &seed_netcfg,
            )?;
            let serial = logs.join(format!("{}.serial.log", spec.name));
            let _ = std::fs::remove_file(&serial);
            let qga_sock = gdir.join("qga.sock");
            let root = spec.root_disk.as_deref().unwrap_or(&a.root_img);
            let root_drive = if spec.persistent_root {
                // Writes go to the overlay and stay there: a power cut loses only what the guest had not
                // flushed (QEMU's default cache=writeback honours the guest's flushes).
                let overlay = gdir.join("root.qcow2");
                create_overlay(root, &overlay)?;
                format!("file={},if=virtio,format=qcow2", overlay.display())
            } else {
                format!(
                    "file={},if=virtio,format={},snapshot=on",
                    root.display(),
                    disk_format(root)
                )
            };
            let mut args: Vec<std::ffi::OsString> = vec![];
            let mut arg = |a: &dyn AsRef<std::ffi::OsStr>| args.push(a.as_ref().to_owned());
            // QEMU gets SIGKILL when the thread that started it ends (test over, panic, or the process killed).
            for a in ["--pdeathsig", "KILL", "--", "qemu-system-x86_64"] {
                arg(&a);
            }
            for a in [
                "-machine",
                "q35",
                "-accel",
                "tcg,thread=multi",
                "-cpu",
                "max",
                "-m",
                &spec.mem_mb.to_string(),
                "-smp",
                &spec.cpus.to_string(),
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ] {
                arg(&a);
            }
            arg(&"-kernel");
            arg(&a.kernel);
            arg(&"-initrd");
            arg(&a.initrd);
            arg(&"-append");
            arg(&"root=/dev/vda rw console=ttyS0,115200 panic=-1 net.ifnames=1");
            arg(&"-drive");
            arg(&root_drive);
            arg(&"-drive");
            arg(&format!(
                "file={},if=virtio,format=raw,readonly=on",
                iso.display()
            ));
            if spec.payload {
                arg(&"-drive");
                arg(&format!(
                    "file={},if=virtio,format=raw,snapshot=on",
                    spec.payload_disk
                        .as_deref()
                        .unwrap_or(&a.payload_img)
                        .display()
                ));
            }
            arg(&"-serial");
            arg(&format!("file:{}", serial.display()));
            arg(&"-chardev");
            arg(&format!(
                "socket,id=qga0,path={},server=on,wait=off",
                qga_sock.display()
            ));
            for a in [
                "-device",
                "virtio-serial-pci",
                "-device",
                "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            ] {
                arg(&a);
            }
            for a in &netargs {
                arg(a);
            }
            let launch = Launch {
                args,
                dir: gdir.clone(),
                qga_sock: qga_sock.clone(),
                bound_sockets,
                seed_meta,
                seed_netcfg,
            };
            if spec.deferred {
                eprintln!(
                    "e2e: guest {:?} prepared; it boots when the test starts it",
                    spec.name
                );
                guests.push(Guest {
                    name: spec.name.clone(),
                    serial_log: serial,
                    child: Mutex::new(None),
                    qga: Mutex::new(qga::Qga::new(&qga_sock)),
                    started: Instant::now(),
                    cloud_init_done: Mutex::new(false),
                    launch,
                    boots: 0,
                });
                continue;
            }
            let child = launch.spawn(&spec.name)?;
            eprintln!(
                "e2e: booting guest {:?} (pid {}, {} vCPU, {} MiB, serial {}{})",
                spec.name,
                child.id(),
                spec.cpus,
                spec.mem_mb,
                serial.display(),
                if spec.persistent_root {
                    ", root disk kept across boots"
                } else {
                    ""
                }
            );
            let g = Guest {
                name: spec.name.clone(),
                serial_log: serial,
                child: Mutex::new(Some(child)),
                qga: Mutex::new(qga::Qga::new(&qga_sock)),
                started: Instant::now(),
                cloud_init_done: Mutex::new(false),
                launch,
                boots: 1,
            };
            guests.push(g);
        }
        Ok(Lab {
            guests,
            _hub: hub,
            _dir: dir,
        })
    }

    /// Boots a single guest.
    pub fn boot_one(spec: GuestSpec) -> Result<Lab> {
        Lab::boot(vec![spec])
    }

    pub fn guest(&self, name: &str) -> &Guest {
        self.guests
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no guest {name:?} in this lab"))
    }

    /// Waits for cloud-init on every guest (one shared deadline); the first failure is returned.
    pub fn wait_cloud_init(
        &self,
        timeout: Duration,
    ) -> std::result::Result<Vec<CloudInit>, Failure> {
        let deadline = Instant::now() + timeout;
        let mut out = vec![];
        for g in &self.guests {
            out.push(g.wait_cloud_init(deadline.saturating_duration_since(Instant::now()))?);
        }
        Ok(out)
    }
}

/// `systemctl show` of one unit.
#[derive(Debug, Clone, Default)]
pub struct UnitStatus {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    pub n_restarts: u32,
    pub active_enter_timestamp: String,
    pub main_pid: u32,
    pub unit_file_state: String,
    pub fragment_path: String,
    /// Every property asked for, raw.
    pub raw: std::collections::BTreeMap<String, String>,
}

/// `stat` of one path.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStat {
    /// Permission bits, e.g. 0o600.
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    /// "regular file", "directory", "symbolic link", ...
    pub kind: String,
}

/// `cloud-init status --long` and result.json, as the guest reports them now.
#[derive(Debug, Clone)]
pub struct CloudInitStatus {
    pub status_long: String,
    pub exit_code: i32,
    pub result_json: Option<Value>,
}

pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Guest {
    /// Exit status if QEMU has exited.
    pub fn exited(&self) -> Option<String> {
        let mut c = self.child.lock().unwrap();
        match c.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Some(st.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("wait error: {e}")),
            None => Some("killed by the harness".into()),
        }
    }

    pub fn uptime_on_host(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn read_serial_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial_log).unwrap_or_default()).into_owned()
    }

    /// Runs `sh -c script` as root in the guest; waits up to `timeout`.
    pub fn exec_timeout(&self, script: &str, timeout: Duration) -> Result<ExecOutput> {
        if let Some(st) = self.exited() {
            bail!("guest {:?} is not running (qemu: {st})", self.name);
        }
        self.qga
            .lock()
            .unwrap()
            .exec(script, None, timeout)
            .with_context(|| format!("in guest {:?}: {script}", self.name))
    }

    /// Runs `sh -c script` as root in the guest (2 minutes at most).
    pub fn exec(&self, script: &str) -> Result<ExecOutput> {
        self.exec_timeout(script, Duration::from_secs(120))
    }

    /// Like [`exec`](Self::exec) but panics with the command's output unless it exits 0; returns stdout.
    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        match self.exec(script) {
            Ok(o) if o.ok() => o.stdout,
            Ok(o) => panic!(
                "in guest {:?}: `{script}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.name, o.code, o.stdout, o.stderr
            ),
            Err(e) => panic!("in guest {:?}: `{script}`: {e:#}", self.name),
        }
    }

    /// Writes a file in the guest (stdin of `cat`).
    pub fn write_file(&self, path: &str, content: &[u8]) -> Result<()> {
        let script = format!(
            "mkdir -p \"$(dirname {p})\" && cat > {p}",
            p = sh_quote(path)
        );
        let o = self
            .qga
            .lock()
            .unwrap()
            .exec(&script, Some(content), Duration::from_secs(60))?;
        if !o.ok() {
            bail!("write {path}: {}", o.stderr);
        }
        Ok(())
    }

    /// Waits until the guest agent answers.
    pub fn wait_agent(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                bail!(
                    "guest {:?} exited ({st}) before its agent answered",
                    self.name
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "guest {:?}: agent not answering after {timeout:?}",
                    self.name
                );
            }
            if self
                .qga
                .lock()
                .unwrap()
                .ping(left.min(Duration::from_secs(10)))
                .is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn failure(&self, kind: FailureKind, message: String) -> Failure {
        let alive = self.exited().is_none();
        let (mut status_long, mut result_json, mut output) = (None, None, None);
        if alive {
            if let Ok(st) = self.cloud_init_status() {
                status_long = Some(st.status_long);
                result_json = st.result_json;
            }
            output = self
                .exec("tail -n 80 /var/log/cloud-init-output.log")
                .ok()
                .map(|o| o.stdout);
        }
        Failure {
            guest: self.name.clone(),
            kind,
            message,
            status_long,
            result_json,
            cloud_init_output: output,
            serial_log_path: self.serial_log.clone(),
            serial_log: self.read_serial_log(),
        }
    }

    /// Waits until cloud-init has finished (all stages, /run/cloud-init/result.json written). Ok when it reports
    /// no errors; otherwise a [`Failure`] with status, result.json, cloud-init-output.log and the serial log.
    pub fn wait_cloud_init(&self, timeout: Duration) -> std::result::Result<CloudInit, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Err(self.failure(
                    FailureKind::GuestExited,
                    format!("qemu exited ({st}) before cloud-init finished"),
                ));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(
                    FailureKind::Timeout,
                    format!("cloud-init not finished after {timeout:?}"),
                ));
            }
            let probe = self.qga.lock().unwrap().exec(
                "cat /run/cloud-init/result.json 2>/dev/null",
                None,
                Duration::from_secs(30).min(
                    deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_secs(1)),
                ),
            );
            if let Ok(o) = probe {
                if o.ok() {
                    if let Ok(result) = serde_json::from_str::<Value>(&o.stdout) {
                        let seconds = self.started.elapsed().as_secs_f64();
                        let st = self.cloud_init_status().ok();
                        let errors = result["v1"]["errors"]
                            .as_array()
                            .map(|a| a.len())
                            .unwrap_or(0);
                        let bad_status = st
                            .as_ref()
                            .map(|s| s.exit_code != 0 || !s.status_long.contains("status: done"))
                            .unwrap_or(false);
                        *self.cloud_init_done.lock().unwrap() = true;
                        if errors > 0 || bad_status {
                            let msg =
                                format!(
                                "cloud-init finished with {errors} error(s) after {seconds:.0}s{}",
                                if bad_status { " and a non-done status" } else { "" }
                            );
                            return Err(self.failure(FailureKind::CloudInitError, msg));
                        }
                        eprintln!(
                            "e2e: guest {:?}: cloud-init done after {seconds:.0}s",
                            self.name
                        );
                        return Ok(CloudInit {
                            status_long: st.map(|s| s.status_long).unwrap_or_default(),
                            result_json: result,
                            seconds,
                        });
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }

    /// Like [`wait_cloud_init`](Self::wait_cloud_init) but panics with the whole [`Failure`] report.
    #[track_caller]
    pub fn expect_cloud_init(&self, timeout: Duration) -> CloudInit {
        match self.wait_cloud_init(timeout) {
            Ok(c) => c,
            Err(f) => panic!("provisioning failed:\n{f}"),
        }
    }

    // ---- assertions: what systemd, Podman and the filesystem in the guest say ----

    /// `cloud-init status --long` (+ exit code) and /run/cloud-init/result.json.
    pub fn cloud_init_status(&self) -> Result<CloudInitStatus> {
        let o = self.exec_timeout("cloud-init status --long 2>&1", Duration::from_secs(180))?;
        let r = self.exec("cat /run/cloud-init/result.json 2>/dev/null")?;
        Ok(CloudInitStatus {
            status_long: o.stdout,
            exit_code: o.code,
            result_json: if r.ok() {
                serde_json::from_str(&r.stdout).ok()
            } else {
                None
            },
        })
    }

    /// `systemctl show` of a unit: ActiveState, SubState, NRestarts, ActiveEnterTimestamp, ...
    pub fn unit(&self, unit: &str) -> Result<UnitStatus> {
        let props = "LoadState,ActiveState,SubState,Result,NRestarts,ActiveEnterTimestamp,ActiveEnterTimestampMonotonic,MainPID,UnitFileState,FragmentPath,ExecMainStatus";
        let o = self.exec(&format!(
            "systemctl show --no-pager -p {props} {}",
            sh_quote(unit)
        ))?;
        if !o.ok() {
            bail!("systemctl show {unit}: {}", o.stderr);
        }
        let raw: std::collections::BTreeMap<String, String> = o
            .stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let g = |k: &str| raw.get(k).cloned().unwrap_or_default();
        Ok(UnitStatus {
            load_state: g("LoadState"),
            active_state: g("ActiveState"),
            sub_state: g("SubState"),
            result: g("Result"),
            n_restarts: g("NRestarts").parse().unwrap_or(0),
            active_enter_timestamp: g("ActiveEnterTimestamp"),
            main_pid: g("MainPID").parse().unwrap_or(0),
            unit_file_state: g("UnitFileState"),
            fragment_path: g("FragmentPath"),
            raw,
        })
    }

    /// `systemctl is-enabled` output ("enabled", "disabled", "static", "not-found", ...).
    pub fn is_enabled(&self, unit: &str) -> Result<String> {
        let o = self.exec(&format!("systemctl is-enabled {} 2>&1", sh_quote(unit)))?;
        Ok(o.stdout.trim().lines().last().unwrap_or("").to_string())
    }

    /// Polls until the unit is active/running (or fails fast when it is failed), returning the last status.
    pub fn wait_unit_active(&self, unit: &str, timeout: Duration) -> Result<UnitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.unit(unit)?;
            if st.active_state == "active" {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{unit} not active after {timeout:?}: {st:?}\njournal:\n{}",
                    self.journal(unit, 50).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// `stat` of a path; None when it does not exist.
    pub fn file_stat(&self, path: &str) -> Result<Option<FileStat>> {
        let o = self.exec(&format!("stat -c '%a|%U|%G|%s|%F' {}", sh_quote(path)))?;
        if !o.ok() {
            return Ok(None);
        }
        let f: Vec<&str> = o.stdout.trim().split('|').collect();
        if f.len() != 5 {
            bail!("unexpected stat output: {}", o.stdout);
        }
        Ok(Some(FileStat {
            mode: u32::from_str_radix(f[0], 8)?,
            owner: f[1].into(),
            group: f[2].into(),
            size: f[3].parse()?,
            kind: f[4].into(),
        }))
    }

    /// A file's content; None when it does not exist.
    pub fn read_file(&self, path: &str) -> Result<Option<String>> {
        let o = self.exec(&format!(
            "test -e {p} || exit 3; cat {p}",
            p = sh_quote(path)
        ))?;
        match o.code {
            0 => Ok(Some(o.stdout)),
            3 => Ok(None),
            _ => bail!("cat {path}: {}", o.stderr),
        }
    }

    /// Running containers, as `podman ps --format json` reports them.
    pub fn containers(&self) -> Result<Vec<Value>> {
        self.podman_json("podman ps --format json")
    }

    /// All containers, running or not (`podman ps -a`).
    pub fn all_containers(&self) -> Result<Vec<Value>> {
        self.podman_json("podman ps -a --format json")
    }

    /// Names of the running containers.
    pub fn container_names(&self) -> Result<Vec<String>> {
        Ok(self
            .containers()?
            .iter()
            .flat_map(|c| c["Names"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(String::from))
            .collect())
    }

    /// `podman images --format json`.
    pub fn images(&self) -> Result<Vec<Value>> {
        self.podman_json("podman images --format json")
    }

    fn podman_json(&self, cmd: &str) -> Result<Vec<Value>> {
        let o = self.exec(cmd)?;
        if !o.ok() {
            bail!("{cmd}: {}", o.stderr);
        }
        let v: Value = serde_json::from_str(o.stdout.trim())
            .with_context(|| format!("{cmd} output: {}", o.stdout))?;
        v.as_array()
            .cloned()
            .ok_or_else(|| anyhow!("{cmd}: not a JSON array"))
    }

    /// The last `n` lines of a unit's journal (`journalctl -u UNIT -o cat -n N`).
    pub fn journal(&self, unit: &str, n: usize) -> Result<String> {
        Ok(self
            .exec(&format!(
                "journalctl --no-pager -u {} -o cat -n {n}",
                sh_quote(unit)
            ))?
            .stdout)
    }

    /// Stops the guest now (SIGKILL to QEMU). Disks are throw-away snapshots, except a
    /// [`GuestSpec::persistent_root`] overlay, which keeps what the guest had written (see [`Guest::power_cut`]).
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A power cut: SIGKILL to QEMU while the guest runs, no shutdown, nothing flushed on the guest's
    /// behalf (what it had not written to its virtual disk is lost; what it had is in the host's page
    /// cache and in the overlay). Returns QEMU's exit status; an error when QEMU was not running.
    pub fn power_cut(&self) -> Result<String> {
        let mut c = self.child.lock().unwrap();
        let child = c
            .as_mut()
            .ok_or_else(|| anyhow!("guest {:?}: no QEMU to cut", self.name))?;
        if let Ok(Some(st)) = child.try_wait() {
            bail!(
                "guest {:?}: QEMU had already exited ({st}) before the power cut",
                self.name
            );
        }
        child.kill().context("SIGKILL to QEMU")?;
        let st = child.wait().context("wait for QEMU")?;
        *c = None;
        eprintln!(
            "e2e: guest {:?}: power cut after {:.0}s (QEMU {st})",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
        Ok(st.to_string())
    }

    /// Boots the guest again, after [`Guest::kill`] or [`Guest::power_cut`], with the same disks: the same
    /// root (only a [`GuestSpec::persistent_root`] keeps what the last boot wrote), the same seed ISO (same
    /// instance-id, so cloud-init sees the same instance), the same payload disk. The last boot's serial log
    /// is kept as `<name>.boot<N>.serial.log`; [`Guest::serial_log`] is the new boot's. Then wait for the agent
    /// ([`Guest::wait_agent`]).
    pub fn boot_again(&mut self) -> Result<()> {
        self.kill();
        let kept = self
            .serial_log
            .with_file_name(format!("{}.boot{}.serial.log", self.name, self.boots));
        std::fs::rename(&self.serial_log, &kept)
            .with_context(|| format!("keep {}", self.serial_log.display()))?;
        let child = self.launch.spawn(&self.name)?;
        self.boots += 1;
        eprintln!(
            "e2e: booting guest {:?} again, boot {} (pid {}; boot {} serial log: {})",
            self.name,
            self.boots,
            child.id(),
            self.boots - 1,
            kept.display()
        );
        *self.child.get_mut().unwrap() = Some(child);
        *self.qga.get_mut().unwrap() = qga::Qga::new(&self.launch.qga_sock);
        *self.cloud_init_done.get_mut().unwrap() = false;
        self.started = Instant::now();
        Ok(())
    }

    /// First boot of a [`GuestSpec::deferred`] guest, with `user_data` in its seed instead of the spec's
    /// when given (same instance-id, network and disks as prepared).
    pub fn start(&mut self, user_data: Option<UserData>) -> Result<()> {
        if self.boots > 0 {
            bail!("guest {:?} was started already", self.name);
        }
        if let Some(ud) = user_data {
            let iso = self.launch.dir.join("seed.iso");
            seed::make_seed_iso(
                &self.launch.dir.join("seed"),
                &iso,
                &ud.render(),
                &self.launch.seed_meta,
                &self.launch.seed_netcfg,
            )?;
        }
        let child = self.launch.spawn(&self.name)?;
        self.boots = 1;
        eprintln!(
            "e2e: booting guest {:?} (pid {}, serial {})",
            self.name,
            child.id(),
            self.serial_log.display()
        );
        *self.child.get_mut().unwrap() = Some(child);
        *self.qga.get_mut().unwrap() = qga::Qga::new(&self.launch.qga_sock);
        self.started = Instant::now();
        Ok(())
    }

    /// Boots so far: 1, then one more per [`Guest::boot_again`] (0 for a deferred guest not started yet).
    pub fn boots(&self) -> u32 {
        self.boots
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Host-side sanity: the serial log path of a guest that is gone, for reports.
pub fn serial_log_of(name: &str) -> PathBuf {
    artifacts::cache_dir()
        .join("logs")
        .join(format!("{name}.serial.log"))
}

pub fn read_to_string_lossy(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}
