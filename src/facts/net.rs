//! net facts
