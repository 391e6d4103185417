//! Query strings as the SDKs send them: arrays as `key[]=a&key[]=b` (or repeated `key=`), ranges as
//! `created_at[gte]=...`, booleans as `true`/`false`.

use jiff::Timestamp;

use crate::error::ApiError;

/// A parsed query string.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// List order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// A `created_at[gt|gte|lt|lte]` filter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Strictly after.
    pub gt: Option<Timestamp>,
    /// At or after.
    pub gte: Option<Timestamp>,
    /// Strictly before.
    pub lt: Option<Timestamp>,
    /// At or before.
    pub lte: Option<Timestamp>,
}

impl TimeRange {
    /// Whether `t` is within the range.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.gt.is_none_or(|b| t > b)
            && self.gte.is_none_or(|b| t >= b)
            && self.lt.is_none_or(|b| t < b)
            && self.lte.is_none_or(|b| t <= b)
    }

    /// Whether every time after `t` is past the upper bound.
    pub fn is_past(&self, t: Timestamp) -> bool {
        self.lt.is_some_and(|b| t >= b) || self.lte.is_some_and(|b| t > b)
    }

    /// Whether every time before `t` is before the lower bound.
    pub fn is_before(&self, t: Timestamp) -> bool {
        self.gt.is_some_and(|b| t <= b) || self.gte.is_some_and(|b| t < b)
    }

    /// The earliest time the range admits, if bounded below.
    pub fn lower(&self) -> Option<Timestamp> {
        match (self.gt, self.gte) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The latest time the range admits, if bounded above.
    pub fn upper(&self) -> Option<Timestamp> {
        match (self.lt, self.lte) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Query {
    /// Parses a raw query string (without the `?`).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self { pairs }
    }

    /// Every parameter name, in order (repeated names repeat).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the array `key`, sent as `key[]=` or repeated `key=`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        let bracketed = format!("{key}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| *k == key || *k == bracketed)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `limit`: `default` when absent, 400 when not a positive integer, clamped to `max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(max).min(max)),
                _ => Err(ApiError::field(
                    "limit",
                    format!("must be a positive integer, got {v:?}"),
                )),
            },
        }
    }

    /// A boolean parameter.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(v) => Err(ApiError::field(key, format!("must be true or false, got {v:?}"))),
        }
    }

    /// An integer parameter of at least 1.
    pub fn positive(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(ApiError::field(
                    key,
                    format!("must be an integer of at least 1, got {v:?}"),
                )),
            },
        }
    }

    /// `order`: `asc` or `desc`.
    pub fn order(&self, default: Order) -> Result<Order, ApiError> {
        match self.get("order") {
            None => Ok(default),
            Some("asc") => Ok(Order::Asc),
            Some("desc") => Ok(Order::Desc),
            Some(v) => Err(ApiError::field(
                "order",
                format!("must be asc or desc, got {v:?}"),
            )),
        }
    }

    /// `<key>[gt]`, `<key>[gte]`, `<key>[lt]`, `<key>[lte]`.
    pub fn time_range(&self, key: &str) -> Result<TimeRange, ApiError> {
        let bound = |op: &str| -> Result<Option<Timestamp>, ApiError> {
            let name = format!("{key}[{op}]");
            self.get(&name)
                .map(|v| parse_time(v).map_err(|m| ApiError::field(&name, m)))
                .transpose()
        };
        Ok(TimeRange {
            gt: bound("gt")?,
            gte: bound("gte")?,
            lt: bound("lt")?,
            lte: bound("lte")?,
        })
    }
}

/// Parses an ISO 8601 time: with an offset (`2026-01-02T03:04:05+00:00`, `...Z`) or naive (taken as UTC).
pub fn parse_time(value: &str) -> Result<Timestamp, String> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(t);
    }
    value
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{value:?} is not an ISO 8601 date-time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_in_both_spellings_and_the_last_scalar_wins() {
        let q = Query::parse(Some("types%5B%5D=a&types[]=b&types=c&limit=5&limit=7"));
        assert_eq!(q.all("types"), vec!["a", "b", "c"]);
        assert_eq!(q.get("limit"), Some("7"));
        assert_eq!(q.limit(20, 100).unwrap(), 7);
    }

    #[test]
    fn limits_clamp_and_reject_garbage() {
        assert_eq!(Query::parse(Some("limit=5000")).limit(20, 1000).unwrap(), 1000);
        assert_eq!(Query::parse(None).limit(20, 1000).unwrap(), 20);
        for bad in ["limit=0", "limit=-1", "limit=x"] {
            let err = Query::parse(Some(bad)).limit(20, 1000).unwrap_err();
            assert!(err.message.starts_with("limit:"), "{}", err.message);
        }
    }

    #[test]
    fn time_ranges_parse_offsets_and_naive_times() {
        let q = Query::parse(Some(
            "created_at%5Bgte%5D=2026-01-02T03%3A04%3A05%2B01%3A00&created_at[lt]=2026-01-03T00:00:00",
        ));
        let r = q.time_range("created_at").unwrap();
        assert_eq!(r.gte, Some("2026-01-02T02:04:05Z".parse().unwrap()));
        assert_eq!(r.lt, Some("2026-01-03T00:00:00Z".parse().unwrap()));
        assert!(r.contains("2026-01-02T02:04:05Z".parse().unwrap()));
        assert!(!r.contains("2026-01-03T00:00:00Z".parse().unwrap()));
        let err = Query::parse(Some("created_at[gt]=yesterday"))
            .time_range("created_at")
            .unwrap_err();
        assert!(err.message.starts_with("created_at[gt]:"), "{}", err.message);
    }

    #[test]
    fn booleans_and_orders() {
        assert_eq!(
            Query::parse(Some("include_archived=true"))
                .bool("include_archived")
                .unwrap(),
            Some(true)
        );
        assert!(
            Query::parse(Some("include_archived=yes"))
                .bool("include_archived")
                .is_err()
        );
        assert_eq!(
            Query::parse(Some("order=desc")).order(Order::Asc).unwrap(),
            Order::Desc
        );
        assert!(Query::parse(Some("order=up")).order(Order::Asc).is_err());
    }
}
