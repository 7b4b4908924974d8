//! Which cloud (if any) this host runs on, decided from local evidence only.
//!
//! Like cloud-init's `ds-identify`, we never ask every cloud's metadata service in turn: a
//! metadata address that nobody answers costs a full timeout, and on an on-premises host
//! 169.254.169.254 may even belong to somebody else. So the platform is named first from what
//! is on disk (cloud-init's own verdict, then firmware DMI strings), and only that one cloud's
//! service is ever asked afterwards.
use serde::Serialize;
use std::fs;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Aws,
    Gcp,
    Azure,
    DigitalOcean,
    Oracle,
    Hetzner,
    Unknown,
}

impl Platform {
    /// Short lowercase name, the same as the serialized form.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Aws => "aws",
            Platform::Gcp => "gcp",
            Platform::Azure => "azure",
            Platform::DigitalOcean => "digitalocean",
            Platform::Oracle => "oracle",
            Platform::Hetzner => "hetzner",
            Platform::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Azure's fixed chassis asset tag (ds-identify `is_azure_chassis`).
pub const AZURE_CHASSIS_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";
/// Oracle Cloud's chassis asset tag, on VMs and bare metal alike (ds-identify `dscheck_Oracle`).
pub const ORACLE_CHASSIS_ASSET_TAG: &str = "OracleCloud.com";

/// Decide the platform from cloud-init's instance data (`v1.cloud_name`, `v1.platform`) or DMI,
/// as ds-identify does. Returns the platform and a short description of the evidence.
pub fn identify(root: &Path, instance_data: Option<&serde_json::Value>) -> (Platform, String) {
    // cloud-init has already talked to the cloud, so its verdict outranks firmware strings.
    if let Some(found) = instance_data.and_then(from_instance_data) {
        return found;
    }
    let dmi = Dmi::read(root);
    if let Some(found) = dmi.identify() {
        return found;
    }
    let mut seen = Vec::new();
    if let Some(data) = instance_data {
        let v1 = &data["v1"];
        let name = v1["cloud_name"].as_str().unwrap_or("-");
        let platform = v1["platform"].as_str().unwrap_or("-");
        seen.push(format!(
            "cloud-init v1.cloud_name={name}, v1.platform={platform}"
        ));
    }
    seen.push(dmi.summary());
    (
        Platform::Unknown,
        format!("no supported cloud matched ({})", seen.join("; ")),
    )
}

/// The platform cloud-init itself settled on, when it is one we support.
///
/// Anything else (`nocloud`, `openstack`, `configdrive`, `unknown`, …) is not decisive and
/// leaves the choice to DMI: DigitalOcean droplets, for one, are often provisioned through
/// cloud-init's ConfigDrive datasource, whose cloud name says nothing about DigitalOcean,
/// while the droplet's DMI vendor does.
pub fn from_instance_data(data: &serde_json::Value) -> Option<(Platform, String)> {
    let v1 = data.get("v1")?;
    if let Some(name) = v1.get("cloud_name").and_then(|v| v.as_str()) {
        if let Some(p) = from_cloud_name(name) {
            return Some((p, format!("cloud-init v1.cloud_name={name}")));
        }
    }
    // `platform` is the datasource kind. "ec2" is deliberately absent: the Ec2 datasource also
    // serves Brightbox, Outscale, ZStack and others, and cloud-init names AWS in cloud_name
    // when it really is AWS.
    let platform = v1.get("platform").and_then(|v| v.as_str())?;
    let p = match platform.to_ascii_lowercase().as_str() {
        "gce" => Platform::Gcp,
        "azure" => Platform::Azure,
        "digitalocean" => Platform::DigitalOcean,
        "oracle" => Platform::Oracle,
        "hetzner" => Platform::Hetzner,
        _ => return None,
    };
    Some((p, format!("cloud-init v1.platform={platform}")))
}

/// cloud-init's `v1.cloud_name` values (datasource `cloud_name`, lowercased by cloud-init).
fn from_cloud_name(name: &str) -> Option<Platform> {
    match name.to_ascii_lowercase().as_str() {
        "aws" => Some(Platform::Aws),
        "gce" | "gcp" | "google" => Some(Platform::Gcp),
        "azure" => Some(Platform::Azure),
        "digitalocean" => Some(Platform::DigitalOcean),
        "oracle" => Some(Platform::Oracle),
        "hetzner" => Some(Platform::Hetzner),
        _ => None,
    }
}

/// The DMI strings the kernel exposes under `sys/class/dmi/id`, plus Xen's hypervisor UUID.
/// Missing or unreadable files are `None`: `product_uuid` and `product_serial` are root-only.
#[derive(Debug, Default)]
struct Dmi {
    sys_vendor: Option<String>,
    product_name: Option<String>,
    product_serial: Option<String>,
    product_uuid: Option<String>,
    chassis_asset_tag: Option<String>,
    bios_vendor: Option<String>,
    bios_version: Option<String>,
    board_vendor: Option<String>,
    hypervisor_uuid: Option<String>,
}

impl Dmi {
    fn read(root: &Path) -> Dmi {
        let dir = root.join("sys/class/dmi/id");
        let field = |name: &str| read_trimmed(&dir.join(name));
        Dmi {
            sys_vendor: field("sys_vendor"),
            product_name: field("product_name"),
            product_serial: field("product_serial"),
            product_uuid: field("product_uuid"),
            chassis_asset_tag: field("chassis_asset_tag"),
            bios_vendor: field("bios_vendor"),
            bios_version: field("bios_version"),
            board_vendor: field("board_vendor"),
            hypervisor_uuid: read_trimmed(&root.join("sys/hypervisor/uuid")),
        }
    }

    /// The checks follow canonical/cloud-init `tools/ds-identify` (`dscheck_*`) and the
    /// datasources' own platform checks, in ds-identify's default datasource order
    /// (Azure, DigitalOcean, Ec2, GCE, Hetzner, Oracle). Exact string equality where
    /// ds-identify uses it, because a loose match would send a metadata request to an
    /// on-premises network.
    fn identify(&self) -> Option<(Platform, String)> {
        let is = |v: &Option<String>, want: &str| v.as_deref() == Some(want);

        // dscheck_Azure: the chassis asset tag alone. "Microsoft Corporation" + "Virtual
        // Machine" is every Hyper-V guest, on-premises ones included, so it is not enough.
        if is(&self.chassis_asset_tag, AZURE_CHASSIS_ASSET_TAG) {
            return Some((
                Platform::Azure,
                format!("dmi chassis_asset_tag={AZURE_CHASSIS_ASSET_TAG}"),
            ));
        }
        // dscheck_DigitalOcean.
        if is(&self.sys_vendor, "DigitalOcean") {
            return Some((Platform::DigitalOcean, "dmi sys_vendor=DigitalOcean".into()));
        }
        if let Some(evidence) = self.aws_evidence() {
            return Some((Platform::Aws, evidence));
        }
        // dscheck_GCE plus DataSourceGCE.platform_reports_gce: product name, else the serial
        // (product name is not guaranteed, LP: #1674861). "Google" as vendor is what
        // systemd-detect-virt keys on and is readable without root.
        if is(&self.product_name, "Google Compute Engine") {
            return Some((
                Platform::Gcp,
                "dmi product_name=Google Compute Engine".into(),
            ));
        }
        if let Some(serial) = self
            .product_serial
            .as_deref()
            .filter(|s| s.starts_with("GoogleCloud-"))
        {
            return Some((Platform::Gcp, format!("dmi product_serial={serial}")));
        }
        if is(&self.sys_vendor, "Google") {
            return Some((Platform::Gcp, "dmi sys_vendor=Google".into()));
        }
        // dscheck_Hetzner.
        if is(&self.sys_vendor, "Hetzner") {
            return Some((Platform::Hetzner, "dmi sys_vendor=Hetzner".into()));
        }
        // dscheck_Oracle.
        if is(&self.chassis_asset_tag, ORACLE_CHASSIS_ASSET_TAG) {
            return Some((
                Platform::Oracle,
                format!("dmi chassis_asset_tag={ORACLE_CHASSIS_ASSET_TAG}"),
            ));
        }
        None
    }

    /// AWS shows up in several ways depending on the instance generation:
    /// - Xen instances: `/sys/hypervisor/uuid` starts with "ec2" (ds-identify
    ///   `ec2_identify_platform`), and the BIOS version reads like "4.11.amazon";
    /// - every instance: the system UUID starts with "ec2", in either byte order
    ///   (cloud-init DataSourceEc2 `identify_aws`), but `product_uuid` is root-only;
    /// - Nitro instances: vendor strings "Amazon EC2", world-readable (what
    ///   systemd-detect-virt uses to report "amazon").
    fn aws_evidence(&self) -> Option<String> {
        if let Some(uuid) = &self.hypervisor_uuid {
            if uuid.to_ascii_lowercase().starts_with("ec2") {
                return Some(format!("hypervisor uuid={uuid}"));
            }
        }
        if let Some(uuid) = &self.product_uuid {
            if uuid_names_ec2(uuid) {
                return Some(format!("dmi product_uuid={uuid}"));
            }
        }
        for (name, value) in [
            ("sys_vendor", &self.sys_vendor),
            ("bios_vendor", &self.bios_vendor),
            ("board_vendor", &self.board_vendor),
        ] {
            if value.as_deref() == Some("Amazon EC2") {
                return Some(format!("dmi {name}=Amazon EC2"));
            }
        }
        for (name, value) in [
            ("product_name", &self.product_name),
            ("bios_version", &self.bios_version),
        ] {
            if let Some(v) = value {
                if v.to_ascii_lowercase().contains("amazon") {
                    return Some(format!("dmi {name}={v}"));
                }
            }
        }
        None
    }

    /// What was seen, for the "unknown" evidence string.
    fn summary(&self) -> String {
        let parts: Vec<String> = [
            ("sys_vendor", &self.sys_vendor),
            ("product_name", &self.product_name),
            ("chassis_asset_tag", &self.chassis_asset_tag),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        if parts.is_empty() {
            "no DMI data".into()
        } else {
            format!("dmi {}", parts.join(", "))
        }
    }
}

/// `true` when a SMBIOS system UUID starts with "ec2", either as written or with its first
/// field byte-swapped (some EC2 firmware stores the UUID little-endian; cloud-init checks
/// `uuid.UUID(s).bytes_le.hex().startswith("ec2")`).
fn uuid_names_ec2(uuid: &str) -> bool {
    let lower = uuid.to_ascii_lowercase();
    if lower.starts_with("ec2") {
        return true;
    }
    let first = match lower.split('-').next() {
        Some(f) if f.len() == 8 && f.bytes().all(|b| b.is_ascii_hexdigit()) => f,
        _ => return false,
    };
    let swapped: String = (0..4).rev().map(|i| &first[i * 2..i * 2 + 2]).collect();
    swapped.starts_with("ec2")
}

/// File content without surrounding whitespace; empty or unreadable files count as absent.
fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_uuid_in_both_byte_orders() {
        assert!(uuid_names_ec2("EC2E1916-9099-7CAF-FD21-012345ABCDEF"));
        assert!(uuid_names_ec2("45E12AEC-DCD1-B213-94ED-012345ABCDEF"));
        assert!(!uuid_names_ec2("4C4C4544-0042-3510-8052-B7C04F4E4B32"));
        assert!(!uuid_names_ec2("garbage"));
    }
}
