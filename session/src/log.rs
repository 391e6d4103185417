//! One session's log: ordered appends (fenced for the harness, unfenced for user-side events) and range reads.

use corral_api::events::{Event, EventBody, EventId, EventParam};
use redis::{Value, streams::StreamRangeReply};

use crate::{Cursor, Error, Result, SessionKeys, Store, follow::Follower, keys, lease::FencingToken};

/// How long a recorded spec generation ([`SessionLog::raise_spec_generation`]) lives: far beyond a watch's lag.
pub const SPEC_GENERATION_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// An event about to be appended: its id is chosen before the append, so it can be announced (for example in an
/// SSE `event_start`) before the event itself is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The id the event will have.
    pub id: EventId,
    /// What happened.
    pub body: EventBody,
}

impl NewEvent {
    /// An event with an id chosen earlier.
    pub fn with_id(id: EventId, body: EventBody) -> Self {
        Self { id, body }
    }
}

impl From<EventBody> for NewEvent {
    fn from(body: EventBody) -> Self {
        Self {
            id: EventId::generate(),
            body,
        }
    }
}

impl From<EventParam> for NewEvent {
    fn from(param: EventParam) -> Self {
        param.into_body().into()
    }
}

/// An event as stored: its position in the log and the event, with `processed_at` set.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The event's position: its SSE id and page cursor.
    pub cursor: Cursor,
    /// The event as the API shows it.
    pub event: Event,
}

/// The order of a range read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// One page of a range read.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The events, in the order asked for.
    pub events: Vec<StoredEvent>,
    /// The cursor to pass as `after` for the next page (same order), or `None` when this page is the last.
    pub next: Option<Cursor>,
}

/// The outcome of [`SessionLog::append_user_events`].
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    /// The events as stored: this append's, or on a repeat the first append's (those still in the log).
    pub events: Vec<StoredEvent>,
    /// Whether this was a repeat of an append made earlier with the same idempotency key: nothing was appended
    /// and no wake-up enqueued.
    pub repeat: bool,
    /// Whether the append enqueued a wake-up of the harness pool.
    pub woke: bool,
}

/// The log of one session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionLog {
    pub(crate) store: Store,
    pub(crate) keys: SessionKeys,
    pub(crate) session: String,
}

/// What one run of the append script does besides appending.
struct AppendOptions<'a> {
    token: Option<FencingToken>,
    wake: bool,
    idempotency_key: Option<&'a str>,
    /// Whether the append may use the closing reserve above the session's caps.
    closing: bool,
    /// How long the idempotency record is kept, when not the configured window.
    window: Option<std::time::Duration>,
}

/// What the append script did.
enum AppendReply {
    Stored(Vec<StoredEvent>),
    Repeat { first: Cursor, last: Cursor },
}

impl SessionLog {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.session
    }

    pub(crate) fn new(store: Store, namespace: &str, session: &str) -> Self {
        Self {
            store,
            keys: SessionKeys::new(namespace, session),
            session: session.to_owned(),
        }
    }

    /// The session's Redis keys.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// Appends client-side events (the gateway's `user.*` and `system.message`) without a lease: atomically, in
    /// order, after everything already in the log. Returns them as stored. Enqueues no wake-up: see
    /// [`SessionLog::append_user_events`].
    pub async fn append_user(
        &self,
        events: impl IntoIterator<Item = impl Into<NewEvent>>,
    ) -> Result<Vec<StoredEvent>> {
        let options = AppendOptions {
            token: None,
            wake: false,
            idempotency_key: None,
            closing: false,
            window: None,
        };
        self.stored(
            self.append_inner(options, events.into_iter().map(Into::into).collect())
                .await?,
        )
        .await
    }

    /// Appends client events and, when one of them wakes the harness ([`EventBody::wakes_harness`]), enqueues
    /// the session's wake-up, in one atomic step: a crash can never leave an event without its wake-up or a
    /// wake-up without its event.
    ///
    /// With `idempotency_key` (a client's `Idempotency-Key`), a repeat within [`crate::Config::idempotency_window`]
    /// appends nothing and returns the first append's events with [`Appended::repeat`] set, so a client that retries
    /// after a lost answer stores its message once. The repeat's own events are not compared with the first's.
    pub async fn append_user_events(
        &self,
        events: impl IntoIterator<Item = impl Into<NewEvent>>,
        idempotency_key: Option<&str>,
    ) -> Result<Appended> {
        let events: Vec<NewEvent> = events.into_iter().map(Into::into).collect();
        match idempotency_key.filter(|k| !k.is_empty()) {
            Some(key) => self.append_user_events_within(events, key, None).await,
            None => self.append_user_events_inner(events, None, None).await,
        }
    }

    /// [`SessionLog::append_user_events`] with an idempotency key remembered for `window` (the configured
    /// idempotency window when `None`).
    pub(crate) async fn append_user_events_within(
        &self,
        events: Vec<NewEvent>,
        idempotency_key: &str,
        window: Option<std::time::Duration>,
    ) -> Result<Appended> {
        self.append_user_events_inner(events, Some(idempotency_key), window)
            .await
    }

    async fn append_user_events_inner(
        &self,
        events: Vec<NewEvent>,
        idempotency_key: Option<&str>,
        window: Option<std::time::Duration>,
    ) -> Result<Appended> {
        let wake = events.iter().any(|e| e.body.wakes_harness());
        let options = AppendOptions {
            token: None,
            wake,
            idempotency_key: idempotency_key.filter(|k| !k.is_empty()),
            closing: false,
            window,
        };
        match self.append_inner(options, events).await? {
            AppendReply::Stored(events) => Ok(Appended {
                events,
                repeat: false,
                woke: wake,
            }),
            repeat => Ok(Appended {
                events: self.stored(repeat).await?,
                repeat: true,
                woke: false,
            }),
        }
    }

    /// Appends events as the session's writer. Refused atomically with [`Error::Fenced`], and nothing written,
    /// when `token` is no longer the session's current fencing token (another writer took the session over).
    pub async fn append(
        &self,
        token: FencingToken,
        events: impl IntoIterator<Item = impl Into<NewEvent>>,
    ) -> Result<Vec<StoredEvent>> {
        self.append_fenced(token, events, false).await
    }

    /// Appends a writer's closing events (a `session.error` and the idle status that end a turn) into the reserve
    /// above the session's caps ([`crate::SessionCaps`]): how a writer whose append was refused with
    /// [`Error::SessionFull`] still ends its turn with a clear error. Fenced like [`SessionLog::append`].
    pub async fn append_closing(
        &self,
        token: FencingToken,
        events: impl IntoIterator<Item = impl Into<NewEvent>>,
    ) -> Result<Vec<StoredEvent>> {
        self.append_fenced(token, events, true).await
    }

    async fn append_fenced(
        &self,
        token: FencingToken,
        events: impl IntoIterator<Item = impl Into<NewEvent>>,
        closing: bool,
    ) -> Result<Vec<StoredEvent>> {
        let options = AppendOptions {
            token: Some(token),
            wake: false,
            idempotency_key: None,
            closing,
            window: None,
        };
        self.stored(
            self.append_inner(options, events.into_iter().map(Into::into).collect())
                .await?,
        )
        .await
    }

    /// The events of an append: those just stored, or a repeated append's, read back from the log.
    async fn stored(&self, reply: AppendReply) -> Result<Vec<StoredEvent>> {
        match reply {
            AppendReply::Stored(events) => Ok(events),
            AppendReply::Repeat { first, last } => self.between(first, last).await,
        }
    }

    /// The events from `first` to `last`, both included.
    async fn between(&self, first: Cursor, last: Cursor) -> Result<Vec<StoredEvent>> {
        let mut conn = self.store.connection();
        let cmd = redis::cmd("XRANGE")
            .arg(self.keys.events())
            .arg(first.to_string())
            .arg(last.to_string())
            .to_owned();
        let reply: StreamRangeReply = self
            .store
            .run("read a repeated append", async move {
                cmd.query_async(&mut conn).await
            })
            .await?;
        Ok(reply.ids.iter().filter_map(decode_lossy).collect())
    }

    async fn append_inner(&self, options: AppendOptions<'_>, events: Vec<NewEvent>) -> Result<AppendReply> {
        if events.is_empty() {
            return Ok(AppendReply::Stored(Vec::new()));
        }
        let token = options.token;
        let window = match options.idempotency_key {
            Some(_) => u64::try_from(
                options
                    .window
                    .unwrap_or(self.store.config().idempotency_window)
                    .as_millis(),
            )
            .unwrap_or(u64::MAX)
            .max(1)
            .to_string(),
            None => String::new(),
        };
        let config = self.store.config();
        let caps = config.session_caps;
        let (max_bytes, max_events) = match (options.closing, caps.max_bytes, caps.max_events) {
            (true, bytes, events) => (
                cap_with_reserve(bytes, caps.closing_reserve_bytes),
                cap_with_reserve(events, caps.closing_reserve_events),
            ),
            (false, bytes, events) => (bytes, events),
        };
        let mut invocation = keys::scripts::APPEND.key(self.keys.events());
        invocation
            .key(self.keys.fence())
            .key(self.keys.wakeups())
            .key(self.keys.idempotency(options.idempotency_key.unwrap_or_default()))
            .key(self.keys.size())
            .arg(token.map(|t| t.0.to_string()).unwrap_or_default())
            .arg(if options.wake { self.session.as_str() } else { "" })
            .arg(window)
            .arg(max_bytes)
            .arg(max_events);
        for (index, event) in events.iter().enumerate() {
            let data = serde_json::to_string(&event.body)?;
            if config.max_event_bytes > 0 && data.len() > config.max_event_bytes {
                return Err(Error::EventTooLarge {
                    index,
                    size: data.len(),
                    limit: config.max_event_bytes,
                });
            }
            invocation
                .arg(event.id.as_str())
                .arg(event.body.type_name())
                .arg(data);
        }
        let mut conn = self.store.connection();
        let reply: Vec<String> = self
            .store
            .run("append", invocation.invoke_async(&mut conn))
            .await?;
        match reply.split_first() {
            Some((status, rest)) if status == "ok" && rest.len() == events.len() => {
                let mut stored = Vec::with_capacity(events.len());
                for (event, entry) in events.into_iter().zip(rest) {
                    let cursor: Cursor = entry.parse()?;
                    stored.push(StoredEvent {
                        cursor,
                        event: Event {
                            id: event.id,
                            body: event.body,
                            processed_at: Some(cursor.time()),
                        },
                    });
                }
                Ok(AppendReply::Stored(stored))
            }
            Some((status, [current])) if status == "fenced" => Err(Error::Fenced {
                token: token.map(|t| t.0).unwrap_or_default(),
                current: current.parse().unwrap_or_default(),
            }),
            Some((status, [unit, used, limit])) if status == "full" => Err(Error::SessionFull {
                unit: if unit == "events" { "events" } else { "bytes" },
                used: used.parse().unwrap_or_default(),
                limit: limit.parse().unwrap_or_default(),
            }),
            Some((status, [first, last])) if status == "repeat" => Ok(AppendReply::Repeat {
                first: first.parse()?,
                last: last.parse()?,
            }),
            _ => Err(Error::Corrupt {
                cursor: String::new(),
                reason: format!("unexpected append reply {reply:?}"),
            }),
        }
    }

    /// Reads up to `limit` events after `after` (exclusive; from the start, or from the end for
    /// [`Order::Desc`], when `None`).
    pub async fn range(&self, after: Option<Cursor>, limit: usize, order: Order) -> Result<Page> {
        if limit == 0 {
            return Err(Error::InvalidArgument("limit must be at least 1".into()));
        }
        let count = limit.saturating_add(1);
        let mut conn = self.store.connection();
        let key = self.keys.events();
        let reply: StreamRangeReply = match order {
            Order::Asc => {
                let start = after.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
                let cmd = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count)
                    .to_owned();
                self.store
                    .run("range", async move { cmd.query_async(&mut conn).await })
                    .await?
            }
            Order::Desc => {
                let end = after.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
                let cmd = redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg(end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(count)
                    .to_owned();
                self.store
                    .run("range", async move { cmd.query_async(&mut conn).await })
                    .await?
            }
        };
        let mut entries = reply.ids;
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.id.parse()).transpose()?
        } else {
            None
        };
        let events = entries.iter().filter_map(decode_lossy).collect();
        Ok(Page { events, next })
    }

    /// Finds the event with API id `id` after `after` (from the start when `None`), scanning forward. After a
    /// [`Error::Timeout`] on an append, whose outcome is unknown, this tells whether it landed.
    pub async fn find(&self, after: Option<Cursor>, id: &EventId) -> Result<Option<StoredEvent>> {
        let mut after = after;
        loop {
            let page = self.range(after, 500, Order::Asc).await?;
            if let Some(found) = page.events.into_iter().find(|e| &e.event.id == id) {
                return Ok(Some(found));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// The cursor of the newest event, or `None` when the log is empty.
    pub async fn last_cursor(&self) -> Result<Option<Cursor>> {
        let page = self.range(None, 1, Order::Desc).await?;
        Ok(page.events.first().map(|e| e.cursor))
    }

    /// Follows the log from `after` (exclusive), or from now when `None`: every event appended after that point,
    /// in order, blocking while there is none. A reader that reconnects with the last cursor it saw misses nothing
    /// and sees nothing twice.
    pub async fn follow(&self, after: Option<Cursor>) -> Result<Follower> {
        let (after, at_end) = match after {
            Some(cursor) => (cursor, false),
            None => (self.last_cursor().await?.unwrap_or(Cursor::START), true),
        };
        Ok(Follower::new(self.clone(), after, at_end).await)
    }

    /// Records that the Session custom resource's spec is at `generation` or newer (never lowered): the gateway calls
    /// it after writing the spec and before answering, so a reader of a watch-fed cache knows its copy is too old
    /// ([`Self::spec_generation`]). The record only has to outlast a watch's lag, so it expires after
    /// [`SPEC_GENERATION_TTL`]: a raise racing the session's deletion leaves nothing behind for good, and a Session
    /// created again under the same name (its generation starting at 1) is not held below a stale record.
    pub async fn raise_spec_generation(&self, generation: i64) -> Result<()> {
        let mut conn = self.store.connection();
        let mut invocation = crate::keys::scripts::RAISE.key(self.keys.spec_generation());
        invocation
            .arg(generation)
            .arg(SPEC_GENERATION_TTL.as_millis() as u64);
        self.store
            .run("raise spec generation", async move {
                invocation.invoke_async::<i64>(&mut conn).await.map(drop)
            })
            .await
    }

    /// The newest spec generation recorded by [`Self::raise_spec_generation`] (0 when none was).
    pub async fn spec_generation(&self) -> Result<i64> {
        let mut conn = self.store.connection();
        let key = self.keys.spec_generation();
        self.store
            .run("read spec generation", async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<i64>>(&mut conn)
                    .await
                    .map(Option::unwrap_or_default)
            })
            .await
    }

    /// Deletes every key of the session's log. Idempotent.
    pub async fn delete(&self) -> Result<()> {
        let mut conn = self.store.connection();
        let keys = self.keys.all();
        self.store
            .run("delete", async move {
                redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn).await
            })
            .await
    }
}

/// A cap raised by a reserve; no cap (0) stays none.
fn cap_with_reserve(cap: u64, reserve: u64) -> u64 {
    if cap == 0 { 0 } else { cap.saturating_add(reserve) }
}

/// Turns a stream entry into a stored event, skipping (with a warning) an entry this library did not write, so
/// one damaged entry never stops a reader. Unknown event types are kept as raw JSON.
pub(crate) fn decode_lossy(entry: &redis::streams::StreamId) -> Option<StoredEvent> {
    match decode(entry) {
        Ok(event) => Some(event),
        Err(err) => {
            tracing::warn!(entry = %entry.id, error = %err, "skipping an entry of the session log that is not an event");
            None
        }
    }
}

/// Turns a stream entry into a stored event. Unknown event types are kept raw; only entries this library did not
/// write are errors.
pub(crate) fn decode(entry: &redis::streams::StreamId) -> Result<StoredEvent> {
    let cursor: Cursor = entry.id.parse()?;
    let corrupt = |reason: &str| Error::Corrupt {
        cursor: entry.id.clone(),
        reason: reason.to_owned(),
    };
    let field = |name: &str| match entry.map.get(name) {
        Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    let id = field("id").ok_or_else(|| corrupt("no `id` field"))?;
    let id: EventId = id
        .parse()
        .map_err(|e: corral_api::events::InvalidEventId| corrupt(&e.to_string()))?;
    let data = field("data").ok_or_else(|| corrupt("no `data` field"))?;
    let body: EventBody =
        serde_json::from_str(&data).map_err(|e| corrupt(&format!("`data` is not JSON: {e}")))?;
    Ok(StoredEvent {
        cursor,
        event: Event {
            id,
            body,
            processed_at: Some(cursor.time()),
        },
    })
}
