//! Measures the session log on a local redis-server: fenced appends per second (one at a time, batched, and across
//! concurrent sessions) and the delay from an append to a follower seeing it.
//!
//! `cargo run -p corral-session --features test-support --release --example throughput [always|everysec]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use corral_api::events::{AgentMessage, ContentBlock, EventBody};
use corral_session::{
    Config, Cursor, Store,
    testing::{Fsync, RedisServer},
};

fn message(i: usize) -> EventBody {
    EventBody::AgentMessage(AgentMessage {
        content: vec![ContentBlock::text(format!("event {i}: {}", "x".repeat(200)))],
        session_thread_id: None,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fsync = match std::env::args().nth(1).as_deref() {
        Some("everysec") => Fsync::EverySec,
        _ => Fsync::Always,
    };
    let server = RedisServer::start_with(fsync)?;
    let store = Store::connect(&server.url(), Config::default()).await?;
    println!("redis-server with appendonly yes, appendfsync {fsync:?}");

    // One writer, one event per append.
    let log = store.session("bench", "single");
    let lease = log.acquire_lease("bench", Duration::from_secs(600)).await?;
    let n = 2000;
    let started = Instant::now();
    for i in 0..n {
        log.append(lease.token, [message(i)]).await?;
    }
    report("fenced append, 1 event per call", n, started.elapsed());

    // One writer, 16 events per append.
    let started = Instant::now();
    for i in 0..n / 16 {
        log.append(lease.token, (0..16).map(|j| message(i * 16 + j)))
            .await?;
    }
    report(
        "fenced append, 16 events per call",
        n / 16 * 16,
        started.elapsed(),
    );

    // 32 sessions appending at once, one event per call.
    let sessions = 32;
    let per = 250;
    let started = Instant::now();
    let tasks: Vec<_> = (0..sessions)
        .map(|s| {
            let log = store.session("bench", &format!("concurrent-{s}"));
            tokio::spawn(async move {
                let lease = log
                    .acquire_lease("bench", Duration::from_secs(600))
                    .await
                    .unwrap();
                for i in 0..per {
                    log.append(lease.token, [message(i)]).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    report(
        "fenced append, 32 concurrent sessions",
        sessions * per,
        started.elapsed(),
    );

    // Append-to-follower delay.
    let log = store.session("bench", "follow");
    let mut follower = log.follow(Some(Cursor::START)).await?;
    let mut delays = Vec::new();
    for i in 0..500 {
        let sent = Instant::now();
        log.append_user([message(i)]).await?;
        follower.next().await?;
        delays.push(sent.elapsed());
    }
    delays.sort();
    println!(
        "append -> follower: p50 {:?}, p99 {:?} (includes the append's own round trip)",
        delays[delays.len() / 2],
        delays[delays.len() * 99 / 100]
    );
    Ok(())
}

fn report(what: &str, events: usize, took: Duration) {
    println!(
        "{what}: {events} events in {took:?} = {:.0} events/s",
        events as f64 / took.as_secs_f64()
    );
}
