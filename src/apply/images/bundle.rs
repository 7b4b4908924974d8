//! Offline bundles: a tar of OCI archives loaded instead of pulling.
use super::pull::last_error_line;
use super::store::check_reference;
use super::store::is_image_id;
use super::{FailKind, ImageOptions, ImageOutcome, BUNDLE_INDEX};
use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// The bundle's index: `omlboot-images.json` at the top level of the bundle tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleIndex {
    /// Format version; only 1 exists.
    pub version: u32,
    pub images: Vec<BundleImage>,
}

/// One image of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleImage {
    /// The reference the units use, e.g. `docker.io/omnileads/omlapp:2.4.0`; the image is tagged so.
    pub reference: String,
    /// Path of the archive inside the bundle tar (relative, no `..`). Several references may share one.
    pub archive: String,
    /// Optional sha256 (hex) of the archive file; checked before loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Optional image id (hex, `sha256:` prefix allowed). When the reference already points to
    /// this id the archive is not even unpacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Load images from an offline bundle into local storage, tagging each with its reference.
///
/// # Bundle format (version 1)
/// A plain (uncompressed) tar holding, at its top level:
/// - `omlboot-images.json`:
///   ```json
///   {"version": 1,
///    "images": [
///      {"reference": "docker.io/omnileads/omlapp:2.4.0", "archive": "omlapp.tar",
///       "sha256": "<optional: sha256 of omlapp.tar>", "id": "<optional: image id>"}
///    ]}
///   ```
/// - one archive per image, as written by `podman save --format oci-archive -o omlapp.tar REF`
///   (a `docker-archive` from plain `podman save` is accepted too). One image per archive.
///
/// Build one with:
/// ```sh
/// podman save --format oci-archive -o omlapp.tar docker.io/omnileads/omlapp:2.4.0
/// # ... one per image, then write omlboot-images.json (sha256sum / podman image inspect
/// # --format '{{.Id}}' give the optional fields)
/// tar -cf bundle.tar omlboot-images.json omlapp.tar ...
/// ```
///
/// # Behaviour
/// The index is read first (tar entries are skipped by seeking, so this is fast on a large
/// bundle). An image whose reference already points to the index's `id` is left alone. The others'
/// archives are unpacked one at a time into a private 0700 directory under `opts.tmp_dir`, checked
/// against `sha256`, compared with local storage (an archive's image id is its config digest, so
/// an unchanged image is again left alone: `Present`), otherwise loaded with
/// `podman pull oci-archive:FILE` and tagged with `podman tag ID REFERENCE` (`Loaded`), then
/// deleted before the next one is unpacked, so the extra disk needed is one archive, not the bundle.
///
/// Errors: an unreadable bundle, a missing or invalid index, or a corrupt tar is an `Err`; a
/// problem with one image (bad checksum, archive missing from the tar, podman refusing the
/// archive) is that image's `Failed { kind: Other, .. }`.
pub async fn load_bundle(
    bundle: &Path,
    opts: &ImageOptions,
) -> anyhow::Result<Vec<(String, ImageOutcome)>> {
    let path = bundle.to_path_buf();
    let index = tokio::task::spawn_blocking(move || read_index(&path))
        .await
        .context("index reader panicked")?
        .with_context(|| format!("reading bundle {}", bundle.display()))?;

    let mut outcomes: Vec<Option<ImageOutcome>> = vec![None; index.images.len()];
    // archive path in the tar → indexes of the images it holds
    let mut needed: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, img) in index.images.iter().enumerate() {
        let local = opts.image_id(&img.reference).await;
        match (&local, img.id.as_deref().map(strip_sha256)) {
            (Some(have), Some(want)) if have == want => {
                outcomes[i] = Some(ImageOutcome::Present { id: have.clone() })
            }
            _ => needed
                .entry(normalize_entry(Path::new(&img.archive)).expect("validated"))
                .or_default()
                .push(i),
        }
    }
    if !needed.is_empty() {
        let tmp = TempDir::create(&opts.tmp_dir)?;
        let (tx, mut rx) = mpsc::channel::<Unpacked>(1);
        let wanted: HashSet<String> = needed.keys().cloned().collect();
        let (bundle_path, tmp_path) = (bundle.to_path_buf(), tmp.path.clone());
        let producer =
            tokio::task::spawn_blocking(move || unpack_each(&bundle_path, &wanted, &tmp_path, tx));
        while let Some(unpacked) = rx.recv().await {
            let members = needed.remove(&unpacked.archive).unwrap_or_default();
            for i in &members {
                outcomes[*i] = Some(load_one(&index.images[*i], &unpacked, opts).await);
            }
            let _ = std::fs::remove_file(&unpacked.file);
            // Only now may the reader unpack the next archive: one archive on disk at a time.
            let _ = unpacked.done.send(());
        }
        producer
            .await
            .context("bundle reader panicked")?
            .with_context(|| format!("reading bundle {}", bundle.display()))?;
        for (archive, members) in needed {
            for i in members {
                outcomes[i] = Some(ImageOutcome::Failed {
                    kind: FailKind::Other,
                    message: format!(
                        "archive {archive} for {} is named in {BUNDLE_INDEX} but not in the bundle",
                        index.images[i].reference
                    ),
                    attempts: 0,
                });
            }
        }
    }
    Ok(index
        .images
        .into_iter()
        .zip(outcomes)
        .map(|(img, o)| (img.reference, o.expect("every image got an outcome")))
        .collect())
}

/// An archive unpacked to `file`, waiting to be loaded; send on `done` when finished with it.
struct Unpacked {
    archive: String,
    file: PathBuf,
    sha256: String,
    done: oneshot::Sender<()>,
}

async fn load_one(img: &BundleImage, unpacked: &Unpacked, opts: &ImageOptions) -> ImageOutcome {
    let fail = |message: String| ImageOutcome::Failed {
        kind: FailKind::Other,
        message,
        attempts: 1,
    };
    if let Some(want) = &img.sha256 {
        if !want.eq_ignore_ascii_case(&unpacked.sha256) {
            return fail(format!(
                "archive {} for {} has sha256 {}, the index says {want}",
                unpacked.archive, img.reference, unpacked.sha256
            ));
        }
    }
    let file = unpacked.file.clone();
    let probe = tokio::task::spawn_blocking(move || probe_archive(&file)).await;
    let (transport, archive_id) = match probe {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return fail(format!("archive {}: {e:#}", unpacked.archive)),
        Err(e) => {
            return fail(format!(
                "archive {}: reader panicked: {e}",
                unpacked.archive
            ))
        }
    };
    if let Some(want) = &archive_id {
        if opts.image_id(&img.reference).await.as_deref() == Some(want.as_str()) {
            return ImageOutcome::Present { id: want.clone() };
        }
    }
    let source = format!("{transport}:{}", unpacked.file.display());
    let out = opts
        .podman()
        .args(["pull", "--quiet", &source])
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run {}: {e}", opts.podman.display())),
    };
    if !out.status.success() {
        return fail(format!(
            "podman could not load {} for {}: {}",
            unpacked.archive,
            img.reference,
            last_error_line(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let id = printed
        .lines()
        .map(str::trim)
        .rfind(|l| is_image_id(l))
        .map(str::to_string)
        .or(archive_id);
    let Some(id) = id else {
        return fail(format!(
            "podman loaded {} but printed no image id",
            unpacked.archive
        ));
    };
    let tag = opts
        .podman()
        .args(["tag", &id, &img.reference])
        .output()
        .await;
    match tag {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return fail(format!(
                "podman tag {id} {}: {}",
                img.reference,
                last_error_line(&String::from_utf8_lossy(&o.stderr))
            ))
        }
        Err(e) => return fail(format!("cannot run {}: {e}", opts.podman.display())),
    }
    tracing::info!(reference = %img.reference, %id, archive = %unpacked.archive, "image loaded from bundle");
    ImageOutcome::Loaded { id }
}

fn strip_sha256(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// A tar entry path as a plain relative string ("./a.tar" → "a.tar"); None for anything that could
/// escape the directory (absolute, `..`).
fn normalize_entry(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn read_index(bundle: &Path) -> anyhow::Result<BundleIndex> {
    let file = File::open(bundle).context("opening")?;
    let mut archive = tar::Archive::new(file);
    // Seeking skips the archives' data: finding the index costs a header read per member.
    for entry in archive.entries_with_seek().context("reading tar")? {
        let mut entry = entry.context("reading tar")?;
        if normalize_entry(&entry.path()?).as_deref() != Some(BUNDLE_INDEX) {
            continue;
        }
        let mut text = String::new();
        (&mut entry)
            .take(4 << 20)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {BUNDLE_INDEX}"))?;
        let index: BundleIndex =
            serde_json::from_str(&text).with_context(|| format!("parsing {BUNDLE_INDEX}"))?;
        validate_index(&index)?;
        return Ok(index);
    }
    bail!("no {BUNDLE_INDEX} at the top level of the bundle (see omlboot's bundle format)")
}

fn validate_index(index: &BundleIndex) -> anyhow::Result<()> {
    if index.version != 1 {
        bail!(
            "{BUNDLE_INDEX}: version {} is not supported (this omlboot reads version 1)",
            index.version
        );
    }
    let mut refs = HashSet::new();
    for (n, img) in index.images.iter().enumerate() {
        let at = format!("{BUNDLE_INDEX}: images[{n}]");
        check_reference(&img.reference).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if !refs.insert(&img.reference) {
            bail!("{at}: reference {} is listed twice", img.reference);
        }
        if normalize_entry(Path::new(&img.archive)).is_none() {
            bail!(
                "{at}: archive {:?} must be a relative path inside the bundle",
                img.archive
            );
        }
        if let Some(s) = &img.sha256 {
            if !is_image_id(s) {
                bail!("{at}: sha256 must be 64 hex digits");
            }
        }
        if let Some(id) = &img.id {
            if !is_image_id(strip_sha256(id)) {
                bail!("{at}: id must be 64 hex digits, optionally prefixed with sha256:");
            }
        }
    }
    Ok(())
}

/// Reader side of [`load_bundle`]: unpack each wanted archive to its own file, hand it over, and
/// wait until the loader is done with it before going on.
fn unpack_each(
    bundle: &Path,
    wanted: &HashSet<String>,
    dir: &Path,
    tx: mpsc::Sender<Unpacked>,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(File::open(bundle).context("opening")?);
    let mut seen = HashSet::new();
    for (n, entry) in archive.entries_with_seek()?.enumerate() {
        let mut entry = entry.context("reading tar")?;
        let Some(name) = normalize_entry(&entry.path()?) else {
            continue;
        };
        if !wanted.contains(&name) || !seen.insert(name.clone()) {
            continue;
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("{name} in the bundle is not a regular file");
        }
        // Our own file name: the member's name never reaches the filesystem.
        let file = dir.join(format!("{n}.archive"));
        let mut out =
            File::create(&file).with_context(|| format!("creating {}", file.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let got = entry
                .read(&mut buf)
                .with_context(|| format!("reading {name}"))?;
            if got == 0 {
                break;
            }
            hasher.update(&buf[..got]);
            out.write_all(&buf[..got])
                .with_context(|| format!("writing {}", file.display()))?;
        }
        out.sync_all().ok();
        drop(out);
        let (done, wait) = oneshot::channel();
        let msg = Unpacked {
            archive: name,
            file,
            sha256: hex::encode(hasher.finalize()),
            done,
        };
        if tx.blocking_send(msg).is_err() {
            return Ok(()); // loader went away (cancelled)
        }
        let _ = wait.blocking_recv();
    }
    Ok(())
}

/// Which podman transport reads this archive, and the image id inside it when it can be told
/// without loading (the id is the digest of the image config).
fn probe_archive(file: &Path) -> anyhow::Result<(&'static str, Option<String>)> {
    let small = read_members(file, |name| {
        name == "oci-layout" || name == "index.json" || name == "manifest.json"
    })?;
    if small.contains_key("oci-layout") {
        let index: serde_json::Value = serde_json::from_slice(
            small
                .get("index.json")
                .context("oci-layout without index.json")?,
        )
        .context("parsing index.json")?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        if manifests.len() != 1 {
            bail!(
                "holds {} images; a bundle archive must hold exactly one",
                manifests.len()
            );
        }
        let m = &manifests[0];
        // A multi-arch index has no single config; podman picks the platform, we just load it.
        if m["mediaType"].as_str() != Some("application/vnd.oci.image.manifest.v1+json") {
            return Ok(("oci-archive", None));
        }
        let digest = m["digest"].as_str().unwrap_or_default();
        let blob = format!("blobs/{}", digest.replacen(':', "/", 1));
        let blobs = read_members(file, |name| name == blob)?;
        let id = blobs
            .get(&blob)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v["config"]["digest"].as_str().map(str::to_string))
            .map(|d| strip_sha256(&d).to_string())
            .filter(|d| is_image_id(d));
        return Ok(("oci-archive", id));
    }
    if let Some(manifest) = small.get("manifest.json") {
        let v: serde_json::Value =
            serde_json::from_slice(manifest).context("parsing manifest.json")?;
        let images = v.as_array().cloned().unwrap_or_default();
        if images.len() != 1 {
            bail!(
                "holds {} images; a bundle archive must hold exactly one",
                images.len()
            );
        }
        // docker-archive names the config "<id>.json" or "blobs/sha256/<id>".
        let config = images[0]["Config"].as_str().unwrap_or_default();
        let stem = config.rsplit('/').next().unwrap_or_default();
        let id = stem.trim_end_matches(".json").to_string();
        return Ok(("docker-archive", is_image_id(&id).then_some(id)));
    }
    bail!("is neither an OCI archive (no oci-layout) nor a docker archive (no manifest.json)")
}

/// Read the (small) members whose names pass `want`, skipping the rest by seeking.
fn read_members(
    file: &Path,
    want: impl Fn(&str) -> bool,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut archive = tar::Archive::new(File::open(file)?);
    let mut found = BTreeMap::new();
    for entry in archive.entries_with_seek()? {
        let mut entry = entry?;
        let Some(name) = normalize_entry(&entry.path()?) else {
            continue;
        };
        if want(&name) {
            let mut data = Vec::new();
            (&mut entry).take(16 << 20).read_to_end(&mut data)?;
            found.insert(name, data);
        }
    }
    Ok(found)
}

/// A private directory removed with everything in it when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create(parent: &Path) -> anyhow::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = parent.join(format!("omlboot-bundle.{}.{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn entry_paths_cannot_escape() {
        assert_eq!(
            normalize_entry(Path::new("./a.tar")).as_deref(),
            Some("a.tar")
        );
        assert_eq!(
            normalize_entry(Path::new("d/a.tar")).as_deref(),
            Some("d/a.tar")
        );
        assert_eq!(normalize_entry(Path::new("../a.tar")), None);
        assert_eq!(normalize_entry(Path::new("/a.tar")), None);
    }

    #[test]
    fn index_validation() {
        let ok: BundleIndex = serde_json::from_str(
            r#"{"version":1,"images":[{"reference":"r/a:1","archive":"a.tar"}]}"#,
        )
        .unwrap();
        validate_index(&ok).unwrap();
        let mut bad = ok.clone();
        bad.version = 2;
        assert!(validate_index(&bad).is_err());
        let mut bad = ok.clone();
        bad.images[0].archive = "../a.tar".into();
        assert!(validate_index(&bad).is_err());
        let mut bad = ok.clone();
        bad.images.push(bad.images[0].clone());
        assert!(validate_index(&bad).is_err());
        assert!(serde_json::from_str::<BundleIndex>(
            r#"{"version":1,"images":[{"reference":"r/a:1","archive":"a.tar","sha265":"x"}]}"#
        )
        .is_err());
    }
}
