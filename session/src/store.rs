//! The connection to Redis and the settings every session log shares.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use redis::{
    AsyncConnectionConfig, Client, RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
};

use crate::{Error, Result, SessionLog, connection::Connection, follow::FollowHub, wakeup::WakeConsumer};

/// How long a component starting beside Redis waits for it ([`Store::connect_waiting`]) before it gives up and
/// exits: five minutes covers a Redis pod being scheduled, pulled and loading its append-only file.
pub const STARTUP_PATIENCE: Duration = Duration::from_secs(300);

/// Timeouts and batch sizes of the session log.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long connecting to Redis may take before [`Store::connect`] fails.
    pub connect_timeout: Duration,
    /// How long one command may take before it fails with [`Error::Timeout`].
    pub command_timeout: Duration,
    /// How long one blocking read of a follow or a wake-up take waits before asking again.
    pub block: Duration,
    /// How many events a follow reads per round trip.
    pub follow_batch: usize,
    /// The most bytes of memory the [`FollowHub`]'s windows of recent events may hold, all followed logs together
    /// (each event counted twice its size in the log: decoded, and as JSON). Past it the oldest events of the
    /// tenant (namespace) holding the most are forgotten, so each tenant keeps at least its fair share (this budget
    /// divided by the tenants holding events) of what it needs; a follower that still needs forgotten events reads
    /// them from the log.
    pub follow_hub_bytes: usize,
    /// The most bytes of the [`FollowHub`]'s windows one tenant (namespace) may hold, counted as
    /// [`Config::follow_hub_bytes`] counts (0: no cap of its own, only its fair share of the process's budget).
    pub follow_hub_tenant_bytes: usize,
    /// How many reads of the log one tenant's followers behind the hub's windows may have in flight at once (0: no
    /// cap); the others wait for one of them to finish, never for another tenant's.
    pub follow_catch_up_reads: usize,
    /// How long a client append made with an idempotency key is remembered: a repeat within this window gets the
    /// first append's events back and appends nothing.
    pub idempotency_window: Duration,
    /// The largest event accepted, in bytes of its stored JSON: a bigger one is refused with
    /// [`crate::Error::EventTooLarge`] before anything is written.
    pub max_event_bytes: usize,
    /// The caps of one session's log: appends that would pass them are refused with [`crate::Error::SessionFull`].
    pub session_caps: SessionCaps,
}

/// How much one session's log may hold. Client and writer appends are refused once the log reaches a cap; a writer
/// may still append its closing events (a `session.error` and the idle status, [`crate::SessionLog::append_closing`])
/// into [`SessionCaps::closing_reserve_bytes`] and [`SessionCaps::closing_reserve_events`] above them, so a full
/// session ends its turn with a clear error instead of failing over and over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCaps {
    /// The most bytes of event JSON a session's log holds (0: no cap).
    pub max_bytes: u64,
    /// The most events a session's log holds (0: no cap).
    pub max_events: u64,
    /// Bytes above `max_bytes` kept for a writer's closing events.
    pub closing_reserve_bytes: u64,
    /// Events above `max_events` kept for a writer's closing events.
    pub closing_reserve_events: u64,
}

impl Default for SessionCaps {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_SESSION_BYTES,
            max_events: DEFAULT_MAX_SESSION_EVENTS,
            closing_reserve_bytes: 256 << 10,
            closing_reserve_events: 64,
        }
    }
}

/// The default of [`Config::max_event_bytes`]: 2 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 2 << 20;
/// The default of [`Config::follow_hub_bytes`]: 96 MiB.
pub const DEFAULT_FOLLOW_HUB_BYTES: usize = 96 << 20;
/// The default of [`Config::follow_catch_up_reads`]: 4 per tenant.
pub const DEFAULT_FOLLOW_CATCH_UP_READS: usize = 4;
/// The default of [`SessionCaps::max_bytes`]: 64 MiB.
pub const DEFAULT_MAX_SESSION_BYTES: u64 = 64 << 20;
/// The default of [`SessionCaps::max_events`]: 100,000.
pub const DEFAULT_MAX_SESSION_EVENTS: u64 = 100_000;

impl Default for Config {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            block: Duration::from_secs(10),
            follow_batch: 256,
            follow_hub_bytes: DEFAULT_FOLLOW_HUB_BYTES,
            follow_hub_tenant_bytes: 0,
            follow_catch_up_reads: DEFAULT_FOLLOW_CATCH_UP_READS,
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            session_caps: SessionCaps::default(),
        }
    }
}

/// A connection to the Redis holding the session logs. Cheap to clone; clones share one multiplexed connection
/// that reconnects by itself, and one [`FollowHub`] (with a connection of its own) for every follow.
#[derive(Clone)]
pub struct Store {
    client: Client,
    conn: Connection,
    config: Arc<Config>,
    hub: Arc<OnceLock<FollowHub>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to Redis at `url` (`redis://host:port/db`), failing with [`Error::Unavailable`] or
    /// [`Error::Timeout`] when it cannot be reached within `config.connect_timeout`.
    pub async fn connect(url: &str, config: Config) -> Result<Self> {
        let client = Client::open(url).map_err(|e| {
            Error::InvalidArgument(format!("invalid Redis URL {:?}: {e}", crate::acl::redact(url)))
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(
            config.connect_timeout,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| Error::Timeout {
            operation: "connect",
            after: config.connect_timeout,
        })?
        .map_err(|e| Error::from_redis(e, "connect", config.connect_timeout))?;
        let store = Self {
            client,
            conn: Connection::new(conn),
            config: Arc::new(config),
            hub: Arc::new(OnceLock::new()),
        };
        store.check_layout().await;
        Ok(store)
    }

    /// [`Store::connect`], waiting up to `patience` for a Redis that is not there yet (it is starting, or being
    /// replaced) instead of failing at once: at install and upgrade the components start together, and a process
    /// that exits while Redis starts only crash-loops. Retries with a backoff of 0.5 s doubling to 5 s, logging each
    /// failure; a URL that cannot be parsed fails at once.
    pub async fn connect_waiting(url: &str, config: Config, patience: Duration) -> Result<Self> {
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            match Self::connect(url, config.clone()).await {
                Ok(store) => return Ok(store),
                Err(err @ Error::InvalidArgument(_)) => return Err(err),
                Err(err) if started.elapsed() + delay >= patience => return Err(err),
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        waited_s = started.elapsed().as_secs(),
                        "the session log's Redis is not reachable yet; waiting for it"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Marks a new Redis with this key layout's version, and warns when Redis holds another one. Best effort: a
    /// tenant's Redis user cannot reach Corral's system keys, which is as it should be.
    async fn check_layout(&self) {
        let mut conn = self.connection();
        let key = crate::keys::system::layout();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(crate::keys::LAYOUT_VERSION)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key);
        let found: RedisResult<(Option<u32>,)> = pipe.query_async(&mut conn).await;
        match found {
            Ok((Some(version),)) if version == crate::keys::LAYOUT_VERSION => {}
            Ok((version,)) => tracing::warn!(
                ?version,
                expected = crate::keys::LAYOUT_VERSION,
                "Redis holds another key layout version; see docs/redis.md"
            ),
            Err(err) => tracing::debug!(error = %err, "cannot check the key layout version"),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle on the shared connection, for commands this library does not wrap (a read that failed because the
    /// connection dropped is sent again once it is back: see [`Connection`]).
    pub fn connection(&self) -> Connection {
        self.conn.clone()
    }

    /// The log of session `session` in namespace `namespace`.
    pub fn session(&self, namespace: &str, session: &str) -> SessionLog {
        SessionLog::new(self.clone(), namespace, session)
    }

    /// Enqueues a wake-up of `session` for the harness pool of `namespace`; returns the queue entry's id.
    pub async fn enqueue(&self, namespace: &str, session: &str) -> Result<String> {
        crate::wakeup::enqueue(self, namespace, session).await
    }

    /// How many wake-ups of `namespace` wait or are being worked on, and when the oldest was enqueued.
    pub async fn wakeup_queue(&self, namespace: &str) -> Result<crate::wakeup::QueueStats> {
        crate::wakeup::queue_stats(self, namespace).await
    }

    /// A consumer of `namespace`'s wake-up queue named `consumer` (unique per process), which reclaims entries
    /// other consumers held for longer than `visibility` without acknowledging or touching them.
    pub async fn wake_consumer(
        &self,
        namespace: &str,
        consumer: &str,
        visibility: Duration,
    ) -> Result<WakeConsumer> {
        WakeConsumer::new(self.clone(), namespace, consumer, visibility).await
    }

    /// Awaits one command (built on a clone of [`Store::connection`]) with the command timeout.
    pub(crate) async fn run<T>(
        &self,
        operation: &'static str,
        command: impl Future<Output = RedisResult<T>>,
    ) -> Result<T> {
        let after = self.config.command_timeout;
        match tokio::time::timeout(after, command).await {
            Ok(result) => result.map_err(|e| Error::from_redis(e, operation, after)),
            Err(_) => Err(Error::Timeout { operation, after }),
        }
    }

    /// A connection of its own, for blocking reads that would stall the shared one, or for a task that must not
    /// queue behind other commands (a replica's liveness beat). Its driver runs on the calling Tokio runtime.
    pub async fn dedicated(&self) -> Result<MultiplexedConnection> {
        dedicated(&self.client, &self.config).await
    }

    /// Redis's memory use and limit (`INFO memory`), for the operator's gauges and alerts.
    pub async fn memory(&self) -> Result<Memory> {
        let mut conn = self.connection();
        let info: String = self
            .run("info", async move {
                redis::cmd("INFO").arg("memory").query_async(&mut conn).await
            })
            .await?;
        Ok(Memory::parse(&info))
    }

    /// The hub every follow of this store shares, started on first use (it must be called inside a Tokio runtime).
    pub fn follow_hub(&self) -> &FollowHub {
        self.hub
            .get_or_init(|| FollowHub::start(self.client.clone(), self.config.clone(), self.conn.clone()))
    }

    /// What the follow hub's windows hold ([`FollowHub::held_bytes`]); 0 while no follow started it.
    pub fn follow_hub_held_bytes(&self) -> usize {
        self.hub.get().map_or(0, FollowHub::held_bytes)
    }

    /// What the follow hub holds and has done ([`FollowHub::stats`]); all zero while no follow started it.
    pub fn follow_hub_stats(&self) -> crate::FollowHubStats {
        self.hub.get().map(FollowHub::stats).unwrap_or_default()
    }
}

/// Redis's memory use, from `INFO memory`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `used_memory`: bytes Redis has allocated.
    pub used: u64,
    /// `maxmemory`: the limit (0: none). With `maxmemory-policy noeviction`, writes past it fail with
    /// [`Error::OutOfMemory`] and nothing is evicted.
    pub max: u64,
    /// `maxmemory_policy`.
    pub policy: String,
}

impl Memory {
    /// Reads the fields from an `INFO memory` reply (missing ones stay 0 or empty).
    pub fn parse(info: &str) -> Self {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let number = |name: &str| field(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        Self {
            used: number("used_memory"),
            max: number("maxmemory"),
            policy: field("maxmemory_policy").unwrap_or_default().to_owned(),
        }
    }
}

/// A connection of its own to `client`, for blocking reads that would stall the shared one.
pub(crate) async fn dedicated(client: &Client, config: &Config) -> Result<MultiplexedConnection> {
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.block + config.command_timeout));
    let after = config.connect_timeout;
    tokio::time::timeout(
        after,
        client.get_multiplexed_async_connection_with_config(&connection),
    )
    .await
    .map_err(|_| Error::Timeout {
        operation: "connect",
        after,
    })?
    .map_err(|e| Error::from_redis(e, "connect", after))
}
