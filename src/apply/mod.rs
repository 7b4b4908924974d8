//! Effects on the host, in plan order. Every effect lives behind a small module.
pub mod engine;
pub mod images;
pub mod packages;
pub mod state;
pub mod systemd;
pub mod tls;
