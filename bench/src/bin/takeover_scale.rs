//! Takeover at scale, against a local redis-server (`appendfsync always`): one replica holds N sessions (1k, 5k,
//! 10k), another beats beside it. Measured:
//!
//! 1. steady state: Redis commands per second over 10 s, with the replicas beating (replica-mode leases: no
//!    per-session traffic), next to the per-session scheme this replaces (every lease renewed and every wake-up
//!    touched every 3.33 s, as the harness did with its 10 s lease and visibility timeout);
//! 2. the holder stops beating (as if SIGKILLed): the time from its last beat until the live replica's beat names it
//!    (detection) and until every session is taken over (new fencing token, fresh wake-up), per trial.
//!
//! `cargo run --release -p corral-bench --bin takeover_scale -- [SIZES...]` (default 1000 5000 10000).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use corral_session::liveness::{self, BEAT_EVERY, Beat, SuspectWatch};
use corral_session::testing::RedisServer;
use corral_session::{Config, ReplicaAcquire, Store};
use futures::StreamExt as _;

const TRIALS: usize = 3;
const STEADY: Duration = Duration::from_secs(10);
const OLD_RENEW_EVERY: Duration = Duration::from_millis(3333);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("sizes are numbers"))
        .collect::<anyhow::Result<_>>()?;
    let sizes = if sizes.is_empty() {
        vec![1000, 5000, 10_000]
    } else {
        sizes
    };
    let server = RedisServer::start().context("redis-server starts (hack/tools.sh installs it)")?;
    let store = Store::connect(&server.url(), Config::default()).await?;
    println!(
        "| sessions | steady Redis commands/s, replica mode | same, per-session leases | detection p50 / max | all taken over p50 / max | reap alone p50 |"
    );
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let mut detect = Vec::new();
        let mut total = Vec::new();
        let mut reap = Vec::new();
        let mut steady_new = 0.0;
        let mut steady_old = 0.0;
        for trial in 0..TRIALS {
            let namespace = format!("scale-{n}-{trial}");
            let dead = liveness::new_replica_id("bench-dead");
            let live = liveness::new_replica_id("bench-live");
            let replicas = store.replicas(&namespace);
            replicas.register(&dead).await?;
            replicas.register(&live).await?;
            lease_all(&store, &namespace, &dead, n).await?;
            if trial == 0 {
                steady_new =
                    commands_per_second(&store, || beat_both(&store, &namespace, &dead, &live)).await?;
                steady_old = per_session_scheme(&store, &namespace, n).await?;
            }
            // The holder's last beat, then only the live one beats, every 200 ms, as its liveness thread does.
            let mut conn = store.dedicated().await?;
            liveness::beat(&mut conn, &namespace, &dead).await?;
            let last_beat = Instant::now();
            let mut ticks = tokio::time::interval(BEAT_EVERY);
            let mut watch = SuspectWatch::default();
            let suspect = loop {
                ticks.tick().await;
                match liveness::beat(&mut conn, &namespace, &live).await? {
                    Beat::Alive { suspects } => {
                        if let Some(ripe) = watch
                            .observe(suspects, Instant::now())
                            .into_iter()
                            .find(|s| s.replica == dead)
                        {
                            break ripe;
                        }
                    }
                    Beat::Dead | Beat::Unregistered => bail!("the live replica lost its registration"),
                }
            };
            let found = last_beat.elapsed();
            let started = Instant::now();
            let reaped = replicas.reap(&suspect).await?;
            if reaped.sessions != n as u64 {
                bail!("reaped {} of {n} sessions", reaped.sessions);
            }
            reap.push(started.elapsed());
            detect.push(found);
            total.push(last_beat.elapsed());
            let queued = store.wakeup_queue(&namespace).await?.depth;
            if queued != n as u64 {
                bail!("{queued} wake-ups after the takeover of {n} sessions");
            }
        }
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (d50, dmax) = (
            median(&mut detect),
            *detect.iter().max().unwrap_or(&Duration::ZERO),
        );
        let (t50, tmax) = (median(&mut total), *total.iter().max().unwrap_or(&Duration::ZERO));
        println!(
            "| {n} | {steady_new:.0} | {steady_old:.0} | {} / {} | {} / {} | {} |",
            ms(d50),
            ms(dmax),
            ms(t50),
            ms(tmax),
            ms(median(&mut reap))
        );
    }
    drop(server);
    Ok(())
}

/// Takes `n` sessions' leases for `replica`, 64 at a time.
async fn lease_all(store: &Store, namespace: &str, replica: &str, n: usize) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| async move {
            match store
                .session(namespace, &format!("sesn_{i}"))
                .acquire_for_replica(replica, None)
                .await?
            {
                ReplicaAcquire::Taken(_) => Ok(()),
                other => bail!("session {i}: {other:?}"),
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect()
}

/// One beat of each replica.
async fn beat_both(store: &Store, namespace: &str, a: &str, b: &str) -> anyhow::Result<()> {
    let mut conn = store.connection();
    liveness::beat(&mut conn, namespace, a).await?;
    liveness::beat(&mut conn, namespace, b).await?;
    Ok(())
}

/// Redis commands per second (`INFO stats` `total_commands_processed`, minus the `INFO` calls) while `tick` runs
/// every [`BEAT_EVERY`] for [`STEADY`].
async fn commands_per_second<F, Fut>(store: &Store, tick: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let before = processed(store).await?;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(BEAT_EVERY);
    while started.elapsed() < STEADY {
        ticks.tick().await;
        tick().await?;
    }
    let after = processed(store).await?;
    Ok((after - before - 1) as f64 / started.elapsed().as_secs_f64())
}

async fn processed(store: &Store) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut store.connection())
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO stats has total_commands_processed")
}

/// The scheme replaced: `n` sessions with TTL leases, each renewed and its wake-up touched every 3.33 s (spread
/// evenly), measured the same way.
async fn per_session_scheme(store: &Store, namespace: &str, n: usize) -> anyhow::Result<f64> {
    let old_ns = format!("{namespace}-old");
    let mut leases = Vec::with_capacity(n);
    for i in 0..n {
        leases.push(
            store
                .session(&old_ns, &format!("sesn_{i}"))
                .acquire_lease("old-replica", Duration::from_secs(10))
                .await?,
        );
    }
    let mut consumer = store
        .wake_consumer(&old_ns, "old-replica", Duration::from_secs(60))
        .await?;
    for i in 0..n {
        store.enqueue(&old_ns, &format!("sesn_{i}")).await?;
    }
    let mut wakeups = Vec::with_capacity(n);
    while wakeups.len() < n {
        wakeups.extend(consumer.take(256).await?);
    }
    let per_tick = n.div_ceil((OLD_RENEW_EVERY.as_millis() / BEAT_EVERY.as_millis()) as usize);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let consumer = &consumer;
    let (leases, wakeups, next) = (&leases, &wakeups, &next);
    commands_per_second(store, || async move {
        let start = next.fetch_add(per_tick, std::sync::atomic::Ordering::Relaxed);
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(start..start + per_tick)
            .map(|k| async move {
                let i = k % n;
                store
                    .session(&old_ns_of(namespace), &format!("sesn_{i}"))
                    .renew(&leases[i])
                    .await?;
                consumer.touch(&wakeups[i]).await?;
                Ok(())
            })
            .buffer_unordered(64)
            .collect()
            .await;
        results.into_iter().collect()
    })
    .await
}

fn old_ns_of(namespace: &str) -> String {
    format!("{namespace}-old")
}
