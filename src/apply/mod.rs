//! apply: effects on the host, in order (packages, files, images, units).
pub mod images;
pub mod packages;
