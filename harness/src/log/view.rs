//! An incrementally refreshed copy of one session's log, with each entry's private fields.

use corral_api::events::{EventBody, EventId};
use corral_session::{Cursor, Error, SessionLog, Store};
use redis::{Value as RedisValue, streams::StreamRangeReply};
use serde_json::Value;

use super::hidden;

/// One entry of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// The entry's position (its `processed_at` is the millisecond part).
    pub cursor: Cursor,
    /// The event's API id.
    pub id: EventId,
    /// The event as the API knows it.
    pub body: EventBody,
    /// The harness's private fields (`corral` key), or `Null`.
    pub hidden: Value,
}

impl LogEntry {
    /// An entry built in memory (tests, previews).
    pub fn new(cursor: Cursor, id: EventId, body: EventBody) -> Self {
        let hidden = match &body {
            EventBody::Other(raw) => raw.get(hidden::KEY).cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let body = match body {
            EventBody::Other(raw) => serde_json::from_value(raw.clone()).unwrap_or(EventBody::Other(raw)),
            body => body,
        };
        Self {
            cursor,
            id,
            body,
            hidden,
        }
    }

    /// A private string field.
    pub fn hidden_str(&self, key: &str) -> Option<&str> {
        self.hidden.get(key).and_then(Value::as_str)
    }

    /// A private number field.
    pub fn hidden_f64(&self, key: &str) -> Option<f64> {
        self.hidden.get(key).and_then(Value::as_f64)
    }

    /// The event's `type`.
    pub fn type_name(&self) -> &str {
        self.body.type_name()
    }
}

/// A session's log read so far; [`LogView::refresh`] reads what was appended since.
#[derive(Debug)]
pub struct LogView {
    store: Store,
    log: SessionLog,
    entries: Vec<LogEntry>,
    /// Bytes of event JSON read (what [`super::LogCache`] budgets).
    approx_bytes: usize,
    /// The entries were read by an earlier run: check that the log still starts where they start.
    pub(super) kept: bool,
}

/// Entries read per round trip.
const PAGE: usize = 1000;

impl LogView {
    /// An empty view of session `session` of `namespace`; call [`LogView::refresh`] to read it.
    pub fn new(store: &Store, namespace: &str, session: &str) -> Self {
        Self {
            store: store.clone(),
            log: store.session(namespace, session),
            entries: Vec::new(),
            approx_bytes: 0,
            kept: false,
        }
    }

    /// The log this view reads.
    pub fn log(&self) -> &SessionLog {
        &self.log
    }

    /// Everything read so far, oldest first.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The cursor of the newest entry read, if any.
    pub fn last_cursor(&self) -> Option<Cursor> {
        self.entries.last().map(|e| e.cursor)
    }

    /// Bytes of event JSON read so far.
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    /// Reads every entry appended after the newest one read so far. Returns how many were new. A view kept from
    /// an earlier run is first checked against the log's first entry, and read again whole when the log is not the
    /// one it read (the session was deleted and created again under its name).
    pub async fn refresh(&mut self) -> Result<usize, Error> {
        if std::mem::take(&mut self.kept)
            && let Some(first) = self.entries.first().map(|e| e.cursor)
        {
            let mut conn = self.log_connection();
            let reply: StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.log.keys().events())
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await
                .map_err(Error::from)?;
            if reply.ids.first().and_then(|e| e.id.parse::<Cursor>().ok()) != Some(first) {
                self.entries.clear();
                self.approx_bytes = 0;
            }
        }
        let before = self.entries.len();
        loop {
            let start = self
                .last_cursor()
                .map_or_else(|| "-".to_owned(), |c| format!("({c}"));
            let mut conn = self.log_connection();
            let reply: StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.log.keys().events())
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await
                .map_err(Error::from)?;
            let n = reply.ids.len();
            for entry in &reply.ids {
                match decode(entry) {
                    Some((decoded, size)) => {
                        self.approx_bytes += size;
                        self.entries.push(decoded);
                    }
                    None => tracing::warn!(entry = %entry.id, "skipping a log entry that is not an event"),
                }
            }
            if n < PAGE {
                return Ok(self.entries.len() - before);
            }
        }
    }

    fn log_connection(&self) -> corral_session::Connection {
        self.store.connection()
    }
}

/// The entry and the size of its JSON.
fn decode(entry: &redis::streams::StreamId) -> Option<(LogEntry, usize)> {
    let field = |name: &str| match entry.map.get(name) {
        Some(RedisValue::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
        Some(RedisValue::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    let cursor: Cursor = entry.id.parse().ok()?;
    let id: EventId = field("id")?.parse().ok()?;
    let data = field("data")?;
    let raw: Value = serde_json::from_str(&data).ok()?;
    let hidden = raw.get(hidden::KEY).cloned().unwrap_or(Value::Null);
    let body: EventBody = serde_json::from_value(raw).ok()?;
    Some((
        LogEntry {
            cursor,
            id,
            body,
            hidden,
        },
        data.len(),
    ))
}
