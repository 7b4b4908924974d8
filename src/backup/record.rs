//! The backup record under /var/lib/omlboot/: last attempt, last success, the last backup (size,
//! duration, verification). Written atomically before a run (the attempt: a run killed -9 counts as
//! a failure for the schedule) and after it. `status` reads it.
use crate::fsutil;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const RECORD_PATH: &str = "var/lib/omlboot/backup.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Last {
    pub name: String,
    pub destination: String,
    pub created_at: u64,
    pub size: u64,
    pub duration_ms: u64,
    pub verified: bool,
    pub verify_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub last_attempt: Option<u64>,
    pub last_success: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Last>,
    /// The first-boot restore (`restore_file_timestamp`) done on this host: once per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_boot: Option<FirstBoot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstBoot {
    /// The instance (cloud-init instance-id or machine-id) it was done for.
    pub instance: String,
    pub source: String,
    pub restored_at: u64,
    /// The fresh database the restore replaced, kept (never dropped at first boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The units' probes passed after the restore; false: the next `run` probes again.
    pub probes_passed: bool,
    /// The catalog's `after_restore` tasks ran again on the restored database and the apply after
    /// them reached done; false: the next `run` runs them again (it never restores again). A record
    /// written before this existed lacks it and reads as true: running the admin reset again at a
    /// later boot of such a host would undo the operator's password.
    #[serde(default = "rerun_before_it_existed")]
    pub tasks_rerun: bool,
}

fn rerun_before_it_existed() -> bool {
    true
}

impl Record {
    pub fn path(root: &Path) -> PathBuf {
        root.join(RECORD_PATH)
    }

    pub fn load(root: &Path) -> Result<Record> {
        Ok(fsutil::read_json(&Self::path(root))?.unwrap_or_default())
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        fsutil::write_json(&Self::path(root), self)
    }
}
