//! omlboot: config → facts → plan → apply → report for OMniLeads hosts.
pub mod facts;
