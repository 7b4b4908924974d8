//! resources facts
