//! omlboot: config → facts → plan → apply → report for OMniLeads hosts.
//!
//! The binary (src/main.rs) only parses the command line and maps errors to exit codes; everything
//! else lives here so tests drive the same code.
pub mod apply;
pub mod bake;
pub mod catalog;
pub mod config;
pub mod facts;
pub mod fsutil;
pub mod plan;

/// Exit codes: the CLI contract every wrapper relies on (like `cloud-init status`).
pub mod exit {
    /// Done: everything asked for is active.
    pub const OK: i32 = 0;
    /// Apply failed, or a component did not become active.
    pub const FAILED: i32 = 1;
    /// Invalid input or usage; nothing on the host was changed.
    pub const INVALID: i32 = 2;
    /// Degraded: finished, but an optional part failed.
    pub const DEGRADED: i32 = 3;
}
