//! Operating system: os-release, package manager family, Podman and systemd versions.
use serde::Serialize;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PkgFamily {
    Apt,
    Dnf,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsInfo {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
    pub family: PkgFamily,
}

/// Parse os-release text (systemd's format: KEY=value, values optionally quoted).
pub fn parse_os_release(text: &str) -> OsInfo {
    let mut get = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            get.insert(
                k.trim().to_string(),
                v.replace("\\\"", "\"").replace("\\\\", "\\"),
            );
        }
    }
    let id = get
        .get("ID")
        .cloned()
        .unwrap_or_else(|| "linux".into())
        .to_ascii_lowercase();
    let id_like: Vec<String> = get
        .get("ID_LIKE")
        .map(|s| {
            s.split_whitespace()
                .map(|w| w.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let family_of = |w: &str| match w {
        "debian" | "ubuntu" => Some(PkgFamily::Apt),
        "rhel" | "fedora" | "centos" | "rocky" | "almalinux" | "ol" | "amzn" => {
            Some(PkgFamily::Dnf)
        }
        _ => None,
    };
    let family = std::iter::once(id.as_str())
        .chain(id_like.iter().map(String::as_str))
        .find_map(family_of)
        .unwrap_or(PkgFamily::Unknown);
    OsInfo {
        version_id: get.get("VERSION_ID").cloned().unwrap_or_default(),
        pretty_name: get
            .get("PRETTY_NAME")
            .cloned()
            .unwrap_or_else(|| id.clone()),
        id,
        id_like,
        family,
    }
}

/// os-release lives in /etc, falling back to /usr/lib as the spec says.
pub fn read(root: &Path) -> OsInfo {
    for p in ["etc/os-release", "usr/lib/os-release"] {
        if let Ok(text) = std::fs::read_to_string(root.join(p)) {
            return parse_os_release(&text);
        }
    }
    parse_os_release("")
}

/// First number-like word of a `--version` line: "podman version 4.3.1" → 4.3.1, "systemd 252 (252.22-1)" → 252.
pub fn version_from(output: &str) -> Option<String> {
    output
        .lines()
        .next()?
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .map(|w| w.trim_end_matches(',').to_string())
}

/// Version of a host tool. Only run against the live root: a fixture root has no programs to run.
pub fn tool_version(root: &Path, program: &str, arg: &str) -> Option<String> {
    if !crate::target::Target::from_root(root).is_live() {
        return None;
    }
    let out = Command::new(program).arg(arg).output().ok()?;
    out.status
        .success()
        .then(|| version_from(&String::from_utf8_lossy(&out.stdout)))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let deb = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(
            (
                deb.family,
                deb.version_id.as_str(),
                deb.pretty_name.as_str()
            ),
            (PkgFamily::Apt, "12", "Debian GNU/Linux 12 (bookworm)")
        );
        let rocky =
            parse_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n");
        assert_eq!(rocky.family, PkgFamily::Dnf);
        let mint = parse_os_release("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(mint.family, PkgFamily::Apt);
        assert_eq!(parse_os_release("ID=arch\n").family, PkgFamily::Unknown);
    }

    #[test]
    fn versions() {
        assert_eq!(
            version_from("podman version 4.3.1\n").as_deref(),
            Some("4.3.1")
        );
        assert_eq!(
            version_from("systemd 252 (252.22-1~deb12u1)\n+PAM +AUDIT").as_deref(),
            Some("252")
        );
        assert_eq!(version_from(""), None);
    }
}
