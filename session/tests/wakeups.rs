//! The wake-up queue and its reclaim of entries a dead consumer held, against a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::start;
use corral_session::keys::{Tenant, shard_of};

#[tokio::test]
async fn wakeups_are_taken_once_and_acked() {
    let (_server, store) = start().await;
    let mut a = store
        .wake_consumer("team-a", "harness-a", Duration::from_secs(30))
        .await
        .unwrap();
    let mut b = store
        .wake_consumer("team-a", "harness-b", Duration::from_secs(30))
        .await
        .unwrap();
    store.enqueue("team-a", "sesn_1").await.unwrap();
    store.enqueue("team-a", "sesn_2").await.unwrap();
    store.enqueue("team-b", "sesn_other").await.unwrap();

    // Each consumer takes no more than it asked for, and each wake-up goes to one consumer.
    let taken = a.take(1).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(!taken[0].reclaimed);
    let taken_b = b.take(10).await.unwrap();
    assert_eq!(taken_b.len(), 1);
    let mut sessions = [taken[0].session.as_str(), taken_b[0].session.as_str()];
    sessions.sort_unstable();
    assert_eq!(sessions, ["sesn_1", "sesn_2"]);
    a.ack(&taken[0]).await.unwrap();
    b.ack(&taken_b[0]).await.unwrap();
    assert!(
        a.take(10).await.unwrap().is_empty(),
        "another namespace's wake-ups are not ours"
    );
    assert!(b.take(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_namespaces_wakeups_spread_over_its_shards_and_none_is_lost() {
    let (_server, store) = start().await;
    let sessions: Vec<String> = (0..40).map(|i| format!("sesn_{i}")).collect();
    for session in &sessions {
        store.enqueue("hot", session).await.unwrap();
    }
    // The hot namespace's wake-ups are in many shards (so many Redis Cluster slots), each in its session's.
    let tenant = Tenant::new("hot");
    let mut conn = store.connection();
    let mut used = 0;
    for (shard, queue) in (0u16..).zip(tenant.wakeup_queues()) {
        let len: usize = redis::cmd("XLEN")
            .arg(&queue)
            .query_async(&mut conn)
            .await
            .unwrap();
        if len > 0 {
            used += 1;
        }
        let here = sessions.iter().filter(|s| shard_of(s) == shard).count();
        assert_eq!(len, here, "shard {shard}");
    }
    assert!(used > 8, "only {used} shards used");

    // A consumer that takes three at a time sees every session once, whichever shards they are in.
    let mut consumer = store
        .wake_consumer("hot", "harness-1", Duration::from_secs(30))
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let taken = consumer.take(3).await.unwrap();
        assert!(taken.len() <= 3, "took {}", taken.len());
        if taken.is_empty() {
            break;
        }
        for wakeup in taken {
            assert_eq!(wakeup.shard, shard_of(&wakeup.session));
            consumer.ack(&wakeup).await.unwrap();
            seen.push(wakeup.session);
        }
    }
    seen.sort();
    let mut expected = sessions.clone();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(store.wakeup_queue("hot").await.unwrap().depth, 0);
}

#[tokio::test]
async fn a_dead_consumers_wakeup_is_reclaimed_after_the_visibility_timeout() {
    let (_server, store) = start().await;
    let visibility = Duration::from_millis(500);
    let mut dead = store
        .wake_consumer("ns", "harness-dead", visibility)
        .await
        .unwrap();
    let mut alive = store
        .wake_consumer("ns", "harness-alive", visibility)
        .await
        .unwrap();
    store.enqueue("ns", "sesn_1").await.unwrap();

    let held = dead.take(1).await.unwrap();
    assert_eq!(held[0].session, "sesn_1");
    drop(dead); // crashes without acknowledging

    assert!(
        alive.take(1).await.unwrap().is_empty(),
        "not reclaimed before the visibility timeout"
    );
    tokio::time::sleep(visibility + Duration::from_millis(200)).await;
    let reclaimed = alive.take(1).await.unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].session, "sesn_1");
    assert_eq!(reclaimed[0].entry, held[0].entry);
    assert!(reclaimed[0].reclaimed);
    alive.ack(&reclaimed[0]).await.unwrap();

    tokio::time::sleep(visibility + Duration::from_millis(200)).await;
    let mut third = store
        .wake_consumer("ns", "harness-third", visibility)
        .await
        .unwrap();
    assert!(
        third.take(1).await.unwrap().is_empty(),
        "an acknowledged wake-up is gone for good"
    );
}

#[tokio::test]
async fn touching_a_wakeup_keeps_it_from_being_reclaimed() {
    let (_server, store) = start().await;
    let visibility = Duration::from_millis(400);
    let mut worker = store.wake_consumer("ns", "harness-1", visibility).await.unwrap();
    let mut other = store.wake_consumer("ns", "harness-2", visibility).await.unwrap();
    store.enqueue("ns", "sesn_long").await.unwrap();
    let held = worker.take(1).await.unwrap().remove(0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(worker.touch(&held).await.unwrap());
        assert!(
            other.take(1).await.unwrap().is_empty(),
            "a touched wake-up stays with its consumer"
        );
    }
    // Once the worker stops touching, the other takes it, and the worker learns it is no longer its own.
    tokio::time::sleep(visibility + Duration::from_millis(200)).await;
    let taken = other.take(1).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(!worker.touch(&held).await.unwrap());
    assert!(other.touch(&taken[0]).await.unwrap());
}

#[tokio::test]
async fn bad_queue_arguments_are_errors() {
    let (_server, store) = start().await;
    assert!(store.enqueue("ns", "").await.is_err());
    assert!(
        store
            .wake_consumer("ns", "", Duration::from_secs(1))
            .await
            .is_err()
    );
    assert!(store.wake_consumer("ns", "c", Duration::ZERO).await.is_err());
}

#[tokio::test]
async fn the_queue_reports_its_depth_and_oldest_entry() {
    let (_server, store) = start().await;
    let empty = store.wakeup_queue("team-q").await.unwrap();
    assert_eq!((empty.depth, empty.oldest_ms), (0, None));
    // Two sessions of one shard, so the take below cannot pick the second and give the first back.
    let second = (2..)
        .map(|i| format!("sesn_{i}"))
        .find(|s| shard_of(s) == shard_of("sesn_1"))
        .unwrap();
    let first = store.enqueue("team-q", "sesn_1").await.unwrap();
    store.enqueue("team-q", &second).await.unwrap();
    let mut consumer = store
        .wake_consumer("team-q", "harness-q", Duration::from_secs(30))
        .await
        .unwrap();
    let taken = consumer.take(1).await.unwrap();
    // A taken but unacknowledged wake-up still counts; the oldest is the first enqueued.
    let stats = store.wakeup_queue("team-q").await.unwrap();
    assert_eq!(stats.depth, 2);
    let first_ms: u64 = first.split('-').next().unwrap().parse().unwrap();
    assert_eq!(stats.oldest_ms, Some(first_ms));
    consumer.ack(&taken[0]).await.unwrap();
    assert_eq!(store.wakeup_queue("team-q").await.unwrap().depth, 1);
}
