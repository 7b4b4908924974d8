//! What the host is: OS, network, public address, resources. Read through a root path so tests use fixtures.
pub mod metadata;
pub mod net;
pub mod os;
pub mod platform;
pub mod public_ip;
pub mod resources;
