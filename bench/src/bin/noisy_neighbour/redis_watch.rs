//! What Redis says about its own stalls during a phase: the longest `appendfsync always` fsync (Redis's latency
//! monitor, event `aof-fsync-always`) and how many AOF rewrites ran. A large write of one tenant makes every
//! client's append wait for its fsync, since Redis fsyncs on its one thread before it answers.

use redis::aio::MultiplexedConnection;

/// A connection to the benchmark's Redis, for its latency monitor.
pub struct RedisWatch {
    conn: MultiplexedConnection,
    /// Redis's network byte counters (in, out) at the last reset.
    net_at_reset: (u64, u64),
}

/// One phase's figures.
pub struct Stalls {
    /// The longest fsync of the phase, in ms (0: none over the monitor's threshold).
    pub fsync_max_ms: u64,
    /// MiB Redis received (appends, mostly) and sent (reads: the follow hub's, and streams catching up) in the phase.
    pub mib_in: f64,
    pub mib_out: f64,
    /// AOF rewrites since the server started.
    pub rewrites: u64,
}

impl RedisWatch {
    /// Connects and turns the latency monitor on (events of 10 ms and more).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("latency-monitor-threshold")
            .arg(10)
            .query_async(&mut conn)
            .await?;
        Ok(Self {
            conn,
            net_at_reset: (0, 0),
        })
    }

    /// Forgets what the monitor saw (call at the start of a phase).
    pub async fn reset(&mut self) -> anyhow::Result<()> {
        let _: u64 = redis::cmd("LATENCY")
            .arg("RESET")
            .query_async(&mut self.conn)
            .await?;
        self.net_at_reset = self.net().await?;
        Ok(())
    }

    /// Redis's `total_net_input_bytes` and `total_net_output_bytes`.
    async fn net(&mut self) -> anyhow::Result<(u64, u64)> {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut self.conn)
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok((field("total_net_input_bytes:"), field("total_net_output_bytes:")))
    }

    /// What the monitor saw since the last reset.
    pub async fn stalls(&mut self) -> anyhow::Result<Stalls> {
        let latest: Vec<(String, u64, u64, u64)> = redis::cmd("LATENCY")
            .arg("LATEST")
            .query_async(&mut self.conn)
            .await?;
        let fsync_max_ms = latest
            .iter()
            .filter(|(event, ..)| event == "aof-fsync-always")
            .map(|(.., max)| *max)
            .max()
            .unwrap_or(0);
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut self.conn)
            .await?;
        let rewrites = info
            .lines()
            .find_map(|l| l.strip_prefix("aof_rewrites:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let (now_in, now_out) = self.net().await?;
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        Ok(Stalls {
            fsync_max_ms,
            rewrites,
            mib_in: mib(now_in.saturating_sub(self.net_at_reset.0)),
            mib_out: mib(now_out.saturating_sub(self.net_at_reset.1)),
        })
    }
}
