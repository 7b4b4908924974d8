//! omlboot: config → facts → plan → apply → report for OMniLeads hosts.
//!
//! The binary (src/main.rs) only parses the command line, calls one [`cmd`] function and prints its
//! outcome; [`error::Code`] is the one mapping to exit codes. Everything else lives here so tests
//! drive the same code.
pub mod apply;
pub mod backup;
pub mod bake;
pub mod catalog;
pub mod cmd;
pub mod config;
pub mod error;
pub mod exec;
pub mod facts;
pub mod fsutil;
pub mod plan;
pub mod retry;
pub mod s3;
pub mod target;

pub use error::{Code, Error, Result};
