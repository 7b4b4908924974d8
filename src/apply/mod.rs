//! Effects on the host, in plan order. The engine decides; the seams (packages, images, systemd)
//! act, each behind a trait with a real implementation and an in-memory fake.
pub mod drain;
pub mod engine;
pub mod fake;
pub mod images;
pub mod packages;
pub mod runtime;
pub mod seams;
pub mod state;
pub mod systemd;
pub mod tasks;
pub mod tls;
pub mod upgrade;
