//! Effects on the host, in plan order. Every effect lives behind a small module.
pub mod state;
pub mod systemd;
pub mod tls;
