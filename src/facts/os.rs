//! os facts
