//! Local podman storage: which image each reference points at.
use super::ImageOptions;
use crate::config::ImageRef;
use std::collections::BTreeMap;
use std::path::Path;

/// Id of the local image `reference` (`podman image inspect --format {{.Id}}`), or None when it is
/// not in the default store. Units compare this before and after apply to decide whether to restart.
/// Use [`ImageOptions::image_id`] for a store chosen with `extra_args`.
pub async fn image_id(podman: &Path, reference: &str) -> Option<String> {
    let opts = ImageOptions {
        podman: podman.to_path_buf(),
        ..ImageOptions::default()
    };
    opts.image_id(reference).await
}

/// Image id of every reference, from one `podman images` listing (a per-reference inspect only for
/// references the listing cannot name, such as digests): dozens of podman runs are slow on a small VM.
pub async fn ids(opts: &ImageOptions, refs: &[String]) -> BTreeMap<String, Option<String>> {
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    let args = [
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ];
    if let Ok(out) = opts.podman().args(args).output().await {
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

pub(crate) fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parsed before podman sees it: podman would take a reference starting with `-` for an option.
pub(crate) fn check_reference(reference: &str) -> Result<ImageRef, String> {
    reference
        .parse()
        .map_err(|e| format!("invalid image reference {reference:?}: {e}"))
}
