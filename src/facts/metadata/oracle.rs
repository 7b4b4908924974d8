//! Oracle Cloud Infrastructure: no public IPv4 from the metadata service.
//!
//! OCI's instance metadata service (`/opc/v2/instance/` and `/opc/v2/vnics/`, header
//! `Authorization: Bearer Oracle`) describes each VNIC by `vnicId`, `privateIp`, `vlanTag`,
//! `macAddr`, `virtualRouterIp`, `subnetCidrBlock` and `nicIndex` only: OCI keeps the public IP
//! outside the instance, as a NAT mapping of the private IP, and only the authenticated OCI API
//! knows it. coreos/afterburn `src/providers/oraclecloud/mod.rs` accordingly reads no address
//! at all, and cloud-init `DataSourceOracle.py` uses the vnics data for private addressing only.
//!
//! So no request is made here: on Oracle the public IPv4 comes from the echo services when
//! they are allowed, and an echo service sees exactly the NAT address the world sees.

/// Why no lookup is made, for the "nothing found" explanation.
pub const NO_PUBLIC_IP: &str =
    "Oracle Cloud's metadata service does not expose the public IPv4 (its VNIC data holds only private addresses)";

/// cloud-init stores `/opc/v2/instance/` as `ds`; it holds no address.
pub fn from_instance_data(_ds: &serde_json::Value) -> Option<(String, String)> {
    None
}
