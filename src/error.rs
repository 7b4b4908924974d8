//! The one error type of the library and the one place where outcomes become exit codes.
//!
//! Every command returns `Result<Outcome, Error>`; the binary only asks for [`Code`].
use crate::config::ConfigErrors;
use std::fmt;

/// Exit codes: the CLI contract every wrapper relies on (like `cloud-init status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Done: everything asked for is in place.
    Ok = 0,
    /// Apply failed, or a component did not become active (internal errors too).
    Failed = 1,
    /// Invalid input or usage; nothing on the host was changed.
    Invalid = 2,
    /// Degraded: finished, but an optional part failed.
    Degraded = 3,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// Why a command did not produce its outcome.
#[derive(Debug)]
pub enum Error {
    /// The configuration is invalid: every problem, with its place.
    Config(ConfigErrors),
    /// Other invalid input or usage (a flag, `--units DIR`, no private IP): exit 2, host untouched.
    Invalid(String),
    /// Something failed while working (I/O, D-Bus, a tool): exit 1.
    Failed(anyhow::Error),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    pub fn code(&self) -> Code {
        match self {
            Error::Config(_) | Error::Invalid(_) => Code::Invalid,
            Error::Failed(_) => Code::Failed,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // ConfigErrors prints its own header and one line per error.
            Error::Config(e) => write!(f, "{e}"),
            Error::Invalid(m) => write!(f, "error: {m}"),
            Error::Failed(e) => write!(f, "error: {e:#}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigErrors> for Error {
    fn from(e: ConfigErrors) -> Error {
        Error::Config(e)
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        match e.downcast::<ConfigErrors>() {
            Ok(ce) => Error::Config(ce),
            Err(e) => Error::Failed(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Failed(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
