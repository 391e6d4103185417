//! Measures the session log on a local redis-server: fenced appends per second (one at a time, batched, and across
//! concurrent sessions) and the delay from an append to a follower seeing it.
//!
//! `cargo run -p corral-session --features test-support --release --example throughput [always|everysec]
//! [SESSIONS] [EVENTS-PER-CALL]` (64 sessions, 4 events per call by default for the concurrent figures).

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

    // Many sessions appending at once: one event per call, then several (a turn's events as the harness appends
    // them: a message, a tool call, their spans).
    let sessions: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let batch: usize = std::env::args().nth(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    for per_call in [1, batch] {
        let events = concurrent(&store, sessions, per_call, 8000 / sessions.max(1)).await?;
        report(
            &format!("fenced append, {sessions} concurrent sessions, {per_call} events per call"),
            events.0,
            events.1,
        );
    }

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

/// `sessions` writers appending `calls` times `per_call` events each, all at once: (events, time taken).
async fn concurrent(
    store: &Store,
    sessions: usize,
    per_call: usize,
    calls: usize,
) -> Result<(usize, Duration), Box<dyn std::error::Error>> {
    let mut leases = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let log = store.session("bench", &format!("concurrent-{per_call}-{s}"));
        let lease = log.acquire_lease("bench", Duration::from_secs(600)).await?;
        leases.push((log, lease.token));
    }
    let started = Instant::now();
    let tasks: Vec<_> = leases
        .into_iter()
        .map(|(log, token)| {
            tokio::spawn(async move {
                for i in 0..calls {
                    log.append(token, (0..per_call).map(|j| message(i * per_call + j)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    Ok((sessions * calls * per_call, started.elapsed()))
}

fn report(what: &str, events: usize, took: Duration) {
    println!(
        "{what}: {events} events in {took:?} = {:.0} events/s",
        events as f64 / took.as_secs_f64()
    );
}
