//! Cursors: positions in a session's log, taken from the stream's entry ids.

use std::{fmt, str::FromStr};

use corral_api::events::Timestamp;

use crate::Error;

/// A position in a session's log: the Redis stream entry id (`<milliseconds>-<sequence>`) of one event.
///
/// Cursors are the log's internal monotonic sequence: they order events, serve as SSE ids and page cursors, and
/// their millisecond part is the event's `processed_at`. They order as the log does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor {
    millis: u64,
    seq: u64,
}

impl Cursor {
    /// The position before the first event.
    pub const START: Self = Self { millis: 0, seq: 0 };

    /// A cursor from its two parts.
    pub const fn new(millis: u64, seq: u64) -> Self {
        Self { millis, seq }
    }

    /// The cursor just before every event processed at or after `time` (for `created_at[gte]` filters).
    pub fn before_time(time: Timestamp) -> Self {
        let millis = u64::try_from(time.as_millisecond()).unwrap_or(0);
        match millis.checked_sub(1) {
            Some(prev) => Self {
                millis: prev,
                seq: u64::MAX,
            },
            None => Self::START,
        }
    }

    /// The milliseconds since the Unix epoch at which Redis took the event.
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// The sequence within that millisecond.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the event was processed (the cursor's millisecond part).
    pub fn time(&self) -> Timestamp {
        i64::try_from(self.millis)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .unwrap_or(Timestamp::MAX)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || Error::InvalidCursor(s.chars().take(64).collect());
        let (millis, seq) = s.split_once('-').ok_or_else(invalid)?;
        let digits = |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(millis) || !digits(seq) {
            return Err(invalid());
        }
        Ok(Self {
            millis: millis.parse().map_err(|_| invalid())?,
            seq: seq.parse().map_err(|_| invalid())?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.millis, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_stream_ids() {
        let c: Cursor = "1714557600120-3".parse().expect("valid");
        assert_eq!(c, Cursor::new(1_714_557_600_120, 3));
        assert_eq!(c.to_string(), "1714557600120-3");
        assert_eq!(
            corral_api::events::format_rfc3339_millis(&c.time()),
            "2024-05-01T10:00:00.120Z"
        );
        assert!(Cursor::new(1, 9) < Cursor::new(2, 0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "a-1",
            "1-b",
            "1-2-3",
            "+",
            "99999999999999999999999-0",
            " 1-0",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn before_time_precedes_events_of_that_millisecond() {
        let t = Timestamp::from_millisecond(1000).expect("time");
        let c = Cursor::before_time(t);
        assert!(c < Cursor::new(1000, 0));
        assert!(c > Cursor::new(999, 5));
    }
}
