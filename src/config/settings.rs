//! Typed values of the config: [`Secret`] and the conversions the generated `Settings` uses.
use super::Value;
use serde::Serialize;
use std::fmt;

/// A secret value. It never prints or serializes (`<redacted>`); `expose()` is the one way to read it,
/// so every place that does is visible.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// The value of a key omlboot accepts but does not use (unsupported when unset, Ansible-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ignored;

/// How a validated [`Value`] becomes a field of `Settings`. Validation already checked the kind, so a
/// mismatch cannot happen for a loaded config; it falls back to the type's empty value.
pub trait FromValue: Sized {
    fn from_value(v: Option<&Value>) -> Self;
}

impl FromValue for String {
    fn from_value(v: Option<&Value>) -> Self {
        match v {
            Some(Value::Text(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }
}

impl FromValue for u64 {
    fn from_value(v: Option<&Value>) -> Self {
        match v {
            Some(Value::Int(i)) => *i,
            _ => 0,
        }
    }
}

impl FromValue for u16 {
    fn from_value(v: Option<&Value>) -> Self {
        u16::try_from(u64::from_value(v)).unwrap_or(0)
    }
}

impl FromValue for bool {
    fn from_value(v: Option<&Value>) -> Self {
        matches!(v, Some(Value::Bool(true)))
    }
}

impl FromValue for Vec<String> {
    fn from_value(v: Option<&Value>) -> Self {
        match v {
            Some(Value::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }
}

impl FromValue for Secret {
    fn from_value(v: Option<&Value>) -> Self {
        Secret(String::from_value(v))
    }
}

impl FromValue for Ignored {
    fn from_value(_: Option<&Value>) -> Self {
        Ignored
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Option<&Value>) -> Self {
        v.map(|v| T::from_value(Some(v)))
    }
}
