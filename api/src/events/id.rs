//! Event ids: `sevt_` followed by a time-ordered unique suffix.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The prefix of every event id Corral generates.
pub const PREFIX: &str = "sevt_";

/// An event's API id.
///
/// Generated ids are `sevt_` plus a UUIDv7 in lowercase hex, so they sort by creation time and never collide.
/// Ids read from a log or an API body are opaque strings and are kept as they are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct EventId(String);

/// An event id that is empty or too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event id {0:?}: must be 1 to 128 printable ASCII characters")]
pub struct InvalidEventId(pub String);

impl EventId {
    /// A fresh, unique, time-ordered id.
    pub fn generate() -> Self {
        Self(format!("{PREFIX}{}", uuid::Uuid::now_v7().simple()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidEventId(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for EventId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}
