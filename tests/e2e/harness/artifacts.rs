//! Everything a guest boots from, built once per test process and cached on disk:
//! the guest image (tests/e2e/build-image.sh), the stand-in images (tests/e2e/standins/build-standins.sh),
//! the omlboot binary under test ($OMLBOOT_BIN, or a static release build), and the payload disk that carries
//! the binary and the stand-ins into the guest (a small ext4 image, label `e2epayload`, mounted at /mnt/e2e).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

pub struct Artifacts {
    pub guest_dir: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub root_img: PathBuf,
    pub standins_dir: PathBuf,
    pub omlboot: PathBuf,
    pub payload_img: PathBuf,
}

/// The omlboot repository (`OMLBOOT_E2E_REPO` overrides, for running this harness from another crate).
pub fn repo_root() -> PathBuf {
    std::env::var_os("OMLBOOT_E2E_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn e2e_dir() -> PathBuf {
    repo_root().join("tests/e2e")
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("OMLBOOT_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join(".cache"))
}

/// Built on first use; an error is remembered and returned to every later caller.
pub fn artifacts() -> Result<&'static Artifacts> {
    static A: OnceLock<std::result::Result<Artifacts, String>> = OnceLock::new();
    A.get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("e2e artifacts: {e}"))
}

fn run_script(script: &Path) -> Result<PathBuf> {
    let t = Instant::now();
    eprintln!("e2e: running {}", script.display());
    let out = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("run {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .last()
        .ok_or_else(|| anyhow!("{} printed nothing", script.display()))?
        .trim()
        .to_string();
    eprintln!("e2e: {} -> {dir} ({:.0?})", script.display(), t.elapsed());
    Ok(PathBuf::from(dir))
}

fn build() -> Result<Artifacts> {
    // Host tools first (one apt-get at a time), then the three independent builds: the image builds are mostly
    // download + dpkg, the omlboot build is CPU.
    let st = Command::new("bash")
        .arg(e2e_dir().join("setup-host.sh"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("tests/e2e/setup-host.sh failed ({st}); run it as root");
    }
    // The three builds are independent: the image builds are mostly download + dpkg, the omlboot build is CPU.
    let guest = std::thread::spawn(|| run_script(&e2e_dir().join("build-image.sh")));
    let standins = std::thread::spawn(|| run_script(&e2e_dir().join("standins/build-standins.sh")));
    let omlboot = omlboot_binary();
    let guest_dir = guest
        .join()
        .map_err(|_| anyhow!("build-image thread panicked"))??;
    let standins_dir = standins
        .join()
        .map_err(|_| anyhow!("build-standins thread panicked"))??;
    let omlboot = omlboot?;
    let payload_img = payload(&omlboot, &standins_dir)?;
    Ok(Artifacts {
        kernel: guest_dir.join("vmlinuz"),
        initrd: guest_dir.join("initrd.img"),
        root_img: guest_dir.join("root.img"),
        guest_dir,
        standins_dir,
        omlboot,
        payload_img,
    })
}

/// `$OMLBOOT_BIN`, or `cargo build --release --target x86_64-unknown-linux-musl` (static glibc build when the
/// musl target is not installed or its build fails) in the repository, with the normal target dir.
pub fn omlboot_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("OMLBOOT_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("OMLBOOT_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let musl = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "x86_64-unknown-linux-musl")
        })
        .unwrap_or(false);
    if musl {
        match cargo_build("x86_64-unknown-linux-musl", None) {
            Ok(p) => return Ok(p),
            Err(e) => eprintln!("e2e: musl build failed ({e:#}); trying a static glibc build"),
        }
    } else {
        eprintln!("e2e: musl target not installed; building a static glibc binary");
    }
    cargo_build(
        "x86_64-unknown-linux-gnu",
        Some("-C target-feature=+crt-static"),
    )
}

fn cargo_build(target: &str, rustflags: Option<&str>) -> Result<PathBuf> {
    let t = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args([
            "build",
            "--release",
            "--bin",
            "omlboot",
            "--message-format=json-render-diagnostics",
            "--target",
            target,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(f) = rustflags {
        cmd.env("RUSTFLAGS", f);
    }
    let out = cmd.output().context("run cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build --release --target {target} failed ({})",
            out.status
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" && v["target"]["name"] == "omlboot" {
            if let Some(exe) = v["executable"].as_str() {
                eprintln!("e2e: built {exe} ({:.0?})", t.elapsed());
                return Ok(PathBuf::from(exe));
            }
        }
    }
    bail!("cargo build --target {target} reported no omlboot executable")
}

fn sha256_file(p: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(p).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string())
}

fn du_bytes(p: &Path) -> u64 {
    Command::new("du")
        .args(["-sb"])
        .arg(p)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(0)
}

/// The payload disk: /omlboot, /standins-bundle.tar, /registry/ (docker-registry storage), /image-overrides.yaml,
/// /components.json. Cached by (binary hash, stand-ins dir); attached with snapshot=on, so guests may write.
fn payload(omlboot: &Path, standins: &Path) -> Result<PathBuf> {
    let bin_hash = sha256_file(omlboot)?;
    let sname = standins.file_name().unwrap().to_string_lossy().to_string();
    let key = format!(
        "{}-{}",
        &bin_hash[..16.min(bin_hash.len())],
        sname.trim_start_matches("standins-")
    );
    let img = cache_dir().join(format!("payload-{key}.img"));
    if img.is_file() {
        return Ok(img);
    }
    let t = Instant::now();
    // Per process: two suites started at once each build their own and the last rename wins.
    let stage = cache_dir().join(format!(".payload-{key}.{}.d", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    std::fs::copy(omlboot, stage.join("omlboot"))?;
    // Hard links keep this cheap (same filesystem as the cache); fall back to a copy.
    let link_or_copy = |from: &Path, to: &Path| -> Result<()> {
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to)?;
        }
        Ok(())
    };
    link_or_copy(
        &standins.join("bundle.tar"),
        &stage.join("standins-bundle.tar"),
    )?;
    link_or_copy(
        &standins.join("image-overrides.yaml"),
        &stage.join("image-overrides.yaml"),
    )?;
    std::fs::copy(
        e2e_dir().join("standins/components.json"),
        stage.join("components.json"),
    )?;
    let st = Command::new("cp")
        .args(["-al"])
        .arg(standins.join("registry"))
        .arg(stage.join("registry"))
        .status()?;
    if !st.success() {
        let st = Command::new("cp")
            .args(["-a"])
            .arg(standins.join("registry"))
            .arg(stage.join("registry"))
            .status()?;
        if !st.success() {
            bail!("copy registry storage");
        }
    }
    let size_mb = du_bytes(&stage) * 13 / 10 / (1 << 20) + 64;
    let tmp = img.with_extension(format!("img.{}.tmp", std::process::id()));
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "e2epayload", "-d"])
        .arg(&stage)
        .arg(&tmp)
        .arg(format!("{size_mb}M"))
        .output()
        .context("mkfs.ext4")?;
    if !out.status.success() {
        bail!(
            "mkfs.ext4 -d failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&tmp, &img)?;
    let _ = std::fs::remove_dir_all(&stage);
    // Keep only the newest few payloads.
    if let Ok(rd) = std::fs::read_dir(cache_dir()) {
        let mut old: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("payload-") && e.path() != img)
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        old.sort();
        let n = old.len();
        for (_, p) in old.into_iter().take(n.saturating_sub(2)) {
            let _ = std::fs::remove_file(p);
        }
    }
    eprintln!(
        "e2e: payload disk {} ({size_mb} MiB, {:.0?})",
        img.display(),
        t.elapsed()
    );
    Ok(img)
}

/// A payload disk with nothing on it (ext4, label `e2epayload`): /mnt/e2e mounts at once, but there is no omlboot
/// to install, no registry to serve (docker-registry.service is skipped) and no bundle. For booting an image that
/// must bring everything itself, e.g. a Packer-baked one. Cached in the cache directory.
pub fn empty_payload() -> Result<PathBuf> {
    let img = cache_dir().join("empty-payload.img");
    if img.is_file() {
        return Ok(img);
    }
    std::fs::create_dir_all(cache_dir())?;
    let tmp = img.with_extension("img.tmp");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "e2epayload"])
        .arg(&tmp)
        .arg("16M")
        .output()
        .context("mkfs.ext4")?;
    if !out.status.success() {
        bail!("mkfs.ext4 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::rename(&tmp, &img)?;
    Ok(img)
}
