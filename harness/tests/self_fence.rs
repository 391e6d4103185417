//! A replica whose liveness beats stall (a Redis stall longer than the self-fence time: an fsync, an AOF rewrite's
//! fork) against a real redis-server, with the real worker and liveness thread.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "engine_support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_harness::agent::{FileAgentSource, manifest::Manifest};
use corral_harness::worker::{Worker, WorkerConfig};
use support::{NS, harness, manifest};
use tokio_util::sync::CancellationToken;

/// Review bug 4: the old worker cancelled every running session when its beats stalled for 600 ms, so a one-second
/// Redis stall cut every model stream of every replica and the call was made again (with a
/// `session.status_rescheduled` that counted toward the 3-takeover limit). Now the stream goes on.
#[tokio::test]
async fn a_redis_stall_longer_than_the_self_fence_cuts_no_model_stream() {
    let script = r#"turns:
  - content: [{text: ["one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight"]}]
    delay_ms: 250
"#;
    let h = harness(script, "").await;
    let agents = FileAgentSource::from_manifest(&Manifest::parse(&manifest(script, "")).unwrap()).unwrap();
    let worker = Arc::new(Worker::new(
        h.store.clone(),
        h.engine.clone(),
        Arc::new(agents),
        WorkerConfig {
            namespace: NS.to_owned(),
            name: corral_session::liveness::new_replica_id("harness-stall"),
            concurrency: 4,
            visibility: Duration::from_secs(60),
            grace: Duration::from_secs(5),
        },
        h.metrics.clone(),
    ));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    // The worker's consumer groups read new wake-ups only: let it start first.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    h.say("s", "hello").await;
    h.store.enqueue(NS, "s").await.unwrap();
    h.wait_for("s", "span.model_request_start").await;
    h.redis.pause().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.redis.resume().unwrap();
    let started = Instant::now();
    while !h.types("s").await.contains(&"session.status_idle".to_owned()) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            h.types("s").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(h.metrics.self_fenced.get(), 1, "the stall fenced the replica");
    let types = h.types("s").await;
    assert_eq!(
        types.iter().filter(|t| *t == "span.model_request_start").count(),
        1,
        "{types:?}"
    );
    assert!(
        !types.contains(&"session.status_rescheduled".to_owned()),
        "{types:?}"
    );
}
