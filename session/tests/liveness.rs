//! Replica liveness and replica-mode leases against a real redis-server: a reaped replica's writes are fenced and
//! its sessions woken again, reapers may crash or race, a Redis restart moves no session, and a tenant's own Redis
//! user runs every script.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{agent, start, user};
use corral_session::keys::{Tenant, WAKEUP_GROUP};
use corral_session::liveness::{self, Beat, STALE_AFTER};
use corral_session::{Error, Lease, ReplicaAcquire, ReplicaRelease, Store, WakeConsumer, Wakeup};

const NS: &str = "team-a";

/// Beats `replica` on the store's shared connection.
async fn beat(store: &Store, replica: &str) -> Beat {
    liveness::beat(&mut store.connection(), NS, replica)
        .await
        .unwrap()
}

/// Takes the session's wake-up with `consumer` and the session's lease for `replica`.
async fn take_and_lease(store: &Store, consumer: &mut WakeConsumer, replica: &str, session: &str) -> Lease {
    store.enqueue(NS, session).await.unwrap();
    let wakeup = take_one(consumer, session).await;
    match store
        .session(NS, session)
        .acquire_for_replica(replica, Some(&wakeup.entry))
        .await
        .unwrap()
    {
        ReplicaAcquire::Taken(lease) => lease,
        other => panic!("expected the lease, got {other:?}"),
    }
}

async fn take_one(consumer: &mut WakeConsumer, session: &str) -> Wakeup {
    for _ in 0..20 {
        if let Some(w) = consumer
            .take(16)
            .await
            .unwrap()
            .into_iter()
            .find(|w| w.session == session)
        {
            return w;
        }
    }
    panic!("no wake-up of {session}");
}

/// Wake-up entries of `namespace` per session, over every shard (pending or not).
async fn queued(store: &Store, namespace: &str) -> HashMap<String, usize> {
    let mut conn = store.connection();
    let mut out = HashMap::new();
    for key in Tenant::new(namespace).wakeup_queues() {
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        for e in entries.ids {
            *out.entry(e.get::<String>("session").unwrap()).or_default() += 1;
        }
    }
    out
}

async fn fence(store: &Store, session: &str) -> u64 {
    let key = store.session(NS, session).keys().fence();
    redis::cmd("GET")
        .arg(key)
        .query_async::<Option<u64>>(&mut store.connection())
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Registers two replicas, `harness-a-…` and `harness-b-…`.
async fn two_replicas(store: &Store) -> (String, String) {
    let ids = (
        liveness::new_replica_id("harness-a"),
        liveness::new_replica_id("harness-b"),
    );
    store.replicas(NS).register(&ids.0).await.unwrap();
    store.replicas(NS).register(&ids.1).await.unwrap();
    ids
}

async fn consumer(store: &Store, replica: &str) -> WakeConsumer {
    store
        .wake_consumer(NS, replica, Duration::from_secs(60))
        .await
        .unwrap()
}

async fn past_stale() {
    tokio::time::sleep(STALE_AFTER + Duration::from_millis(150)).await;
}

#[tokio::test]
async fn a_reaped_replicas_writes_are_fenced_and_its_session_resumed_elsewhere() {
    let (_server, store) = start().await;
    let (a, b) = two_replicas(&store).await;
    let replicas = store.replicas(NS);
    let mut consumer_a = consumer(&store, &a).await;
    let log = store.session(NS, "sesn_1");
    log.append_user([user("hi")]).await.unwrap();
    let lease = take_and_lease(&store, &mut consumer_a, &a, "sesn_1").await;
    log.append(lease.token, [agent("thinking")]).await.unwrap();
    assert!(
        queued(&store, NS).await.is_empty(),
        "taking the lease acknowledged the wake-up"
    );

    // A live replica is never reaped, however often asked.
    assert!(!replicas.reap(&a, false).await.unwrap().reaped);
    match beat(&store, &b).await {
        Beat::Alive { suspects } => assert!(suspects.is_empty(), "{suspects:?}"),
        Beat::Dead => panic!("b is alive"),
    }

    // A stops beating (SIGKILL): b's beat names it, and b reaps it.
    past_stale().await;
    match beat(&store, &b).await {
        Beat::Alive { suspects } => assert_eq!(suspects, vec![a.clone()]),
        Beat::Dead => panic!("b is alive"),
    }
    let reaped = replicas.reap(&a, false).await.unwrap();
    assert!(reaped.reaped);
    assert_eq!(reaped.sessions, 1);
    assert!(reaped.began_ms >= reaped.last_beat_ms.unwrap() + 800);

    // The old holder is fenced, learns it is dead, and cannot release what it lost.
    assert!(matches!(
        log.append(lease.token, [agent("late")]).await,
        Err(Error::Fenced { .. })
    ));
    assert_eq!(beat(&store, &a).await, Beat::Dead);
    assert_eq!(
        log.release_for_replica(&lease, false).await.unwrap(),
        ReplicaRelease::Lost
    );

    // The session was woken again, and b takes it with a newer token.
    assert_eq!(queued(&store, NS).await.get("sesn_1"), Some(&1));
    let mut consumer_b = consumer(&store, &b).await;
    let wakeup = take_one(&mut consumer_b, "sesn_1").await;
    let ReplicaAcquire::Taken(new) = log.acquire_for_replica(&b, Some(&wakeup.entry)).await.unwrap() else {
        panic!("b takes the session");
    };
    assert!(new.token > lease.token);
    log.append(new.token, [agent("resumed")]).await.unwrap();
    assert_eq!(
        log.release_for_replica(&new, false).await.unwrap(),
        ReplicaRelease::Released
    );
    assert!(queued(&store, NS).await.is_empty());
    // Reaping again finds nothing to do.
    assert!(!replicas.reap(&a, false).await.unwrap().reaped);
}

#[tokio::test]
async fn a_wakeup_for_a_held_session_is_answered_by_its_holder_without_waiting() {
    let (_server, store) = start().await;
    let (a, b) = two_replicas(&store).await;
    let mut consumer_a = consumer(&store, &a).await;
    let mut consumer_b = consumer(&store, &b).await;
    let log = store.session(NS, "sesn_1");
    store.enqueue(NS, "sesn_1").await.unwrap();
    let first = take_one(&mut consumer_a, "sesn_1").await;
    let ReplicaAcquire::Taken(lease) = log.acquire_for_replica(&a, Some(&first.entry)).await.unwrap() else {
        panic!("a takes the session");
    };
    // Running the same take again (a retry after a lost reply) answers the same lease.
    assert_eq!(
        log.acquire_for_replica(&a, Some(&first.entry)).await.unwrap(),
        ReplicaAcquire::Taken(lease.clone())
    );
    store.enqueue(NS, "sesn_1").await.unwrap();

    // A second wake-up (a new message during the turn) reaches b: b marks the session and is done at once.
    let wakeup = take_one(&mut consumer_b, "sesn_1").await;
    assert_eq!(
        log.acquire_for_replica(&b, Some(&wakeup.entry)).await.unwrap(),
        ReplicaAcquire::Marked { holder: a.clone() }
    );
    assert!(
        queued(&store, NS).await.is_empty(),
        "the marked wake-up was acknowledged"
    );
    // A's release wakes the session again, so the new message is answered.
    assert_eq!(
        log.release_for_replica(&lease, false).await.unwrap(),
        ReplicaRelease::Requeued
    );
    assert_eq!(queued(&store, NS).await.get("sesn_1"), Some(&1));
}

#[tokio::test]
async fn concurrent_reapers_take_each_session_over_exactly_once() {
    let (_server, store) = start().await;
    let dead = liveness::new_replica_id("harness-a");
    let replicas = store.replicas(NS);
    replicas.register(&dead).await.unwrap();
    let mut consumer = consumer(&store, &dead).await;
    let sessions: Vec<String> = (0..60).map(|i| format!("sesn_{i}")).collect();
    for s in &sessions {
        take_and_lease(&store, &mut consumer, &dead, s).await;
    }
    // Three wake-ups taken but not yet leased when it died: they are handed back, and its consumer deleted.
    for s in ["sesn_p1", "sesn_p2", "sesn_p3"] {
        store.enqueue(NS, s).await.unwrap();
        take_one(&mut consumer, s).await;
    }
    past_stale().await;
    let (r1, r2, r3) = tokio::join!(
        replicas.reap(&dead, false),
        replicas.reap(&dead, false),
        replicas.reap(&dead, false)
    );
    let results = [r1.unwrap(), r2.unwrap(), r3.unwrap()];
    assert_eq!(results.iter().filter(|r| r.reaped).count(), 1, "{results:?}");
    assert_eq!(results.iter().map(|r| r.sessions).sum::<u64>(), 60);
    assert_eq!(results.iter().map(|r| r.handed_back).sum::<u64>(), 3);
    let queue = queued(&store, NS).await;
    assert_eq!(queue.len(), 63);
    assert!(queue.values().all(|n| *n == 1), "{queue:?}");
    for s in &sessions {
        assert_eq!(fence(&store, s).await, 2, "one takeover of {s}");
    }
    let mut conn = store.connection();
    for key in Tenant::new(NS).wakeup_queues() {
        let consumers: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&key)
            .arg(WAKEUP_GROUP)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(consumers.is_empty(), "the reaped consumer is deleted from {key}");
    }
}

#[tokio::test]
async fn a_reap_left_unfinished_by_a_crashed_reaper_is_finished_by_another() {
    let (_server, store) = start().await;
    let (dead, live) = two_replicas(&store).await;
    let replicas = store.replicas(NS);
    let mut consumer = consumer(&store, &dead).await;
    take_and_lease(&store, &mut consumer, &dead, "sesn_1").await;
    // What a reaper that died right after beginning leaves: the replica out of the registry, under a lock.
    let tenant = Tenant::new(NS);
    let mut conn = store.connection();
    let now: (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let now_ms = now.0 * 1000 + now.1 / 1000;
    let _: () = redis::pipe()
        .cmd("ZREM")
        .arg(tenant.replicas())
        .arg(&dead)
        .ignore()
        .cmd("ZADD")
        .arg(tenant.reaping())
        .arg(now_ms + 1000)
        .arg(&dead)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    // While its lock holds, nobody else reaps it.
    assert!(!replicas.reap(&dead, false).await.unwrap().reaped);
    assert_eq!(beat(&store, &dead).await, Beat::Dead);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Once it lapses, a live replica's beat names it and the reap is finished.
    match beat(&store, &live).await {
        Beat::Alive { suspects } => assert_eq!(suspects, vec![dead.clone()]),
        Beat::Dead => panic!("alive"),
    }
    let reaped = replicas.reap(&dead, false).await.unwrap();
    assert!(reaped.reaped);
    assert_eq!(reaped.sessions, 1);
    assert_eq!(queued(&store, NS).await.get("sesn_1"), Some(&1));
    match beat(&store, &live).await {
        Beat::Alive { suspects } => assert!(suspects.is_empty(), "{suspects:?}"),
        Beat::Dead => panic!("alive"),
    }
}

#[tokio::test]
async fn a_redis_restart_moves_no_session() {
    let (mut server, store) = start().await;
    let (a, b) = two_replicas(&store).await;
    let replicas = store.replicas(NS);
    let mut consumer = consumer(&store, &a).await;
    let log = store.session(NS, "sesn_1");
    let lease = take_and_lease(&store, &mut consumer, &a, "sesn_1").await;

    // Redis is down for longer than the stale time: nobody can beat, nobody can reap.
    server.kill();
    tokio::time::sleep(STALE_AFTER * 2).await;
    server.restart().unwrap();
    let mut conn = None;
    for _ in 0..50 {
        if let Ok(c) = store.dedicated().await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut conn = conn.expect("Redis is back");
    // Both replicas come back with their next beat: a's old score made it a suspect, not dead.
    match liveness::beat(&mut conn, NS, &b).await.unwrap() {
        Beat::Alive { suspects } => assert_eq!(suspects, vec![a.clone()], "a is a suspect until it beats"),
        Beat::Dead => panic!("b was never reaped"),
    }
    assert!(matches!(
        liveness::beat(&mut conn, NS, &a).await.unwrap(),
        Beat::Alive { .. }
    ));
    // So a reaper that waited for its own good beats finds a alive, and a's lease and token still hold.
    let mut attempt = 0;
    let reaped = loop {
        // The shared connection reconnects by itself, after a failed command or two.
        match replicas.reap(&a, false).await {
            Ok(reaped) => break reaped,
            Err(err) if attempt < 50 => {
                attempt += 1;
                eprintln!("{err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{err}"),
        }
    };
    assert!(!reaped.reaped);
    log.append(lease.token, [agent("still mine")]).await.unwrap();
    assert_eq!(
        log.release_for_replica(&lease, false).await.unwrap(),
        ReplicaRelease::Released
    );
}

#[tokio::test]
async fn a_tenants_redis_user_runs_every_liveness_and_lease_script() {
    let (server, admin_store) = start().await;
    let mut admin = admin_store.connection();
    corral_session::acl::ensure_tenant_user(&mut admin, NS, "secret")
        .await
        .unwrap();
    let url =
        corral_session::acl::with_credentials(&server.url(), &corral_session::acl::tenant_user(NS), "secret")
            .unwrap();
    let store = Store::connect(&url, common::config()).await.unwrap();
    let (a, b) = two_replicas(&store).await;
    let replicas = store.replicas(NS);
    let mut own = store.dedicated().await.unwrap();
    assert!(matches!(
        liveness::beat(&mut own, NS, &b).await.unwrap(),
        Beat::Alive { .. }
    ));
    let mut consumer = consumer(&store, &a).await;
    let released = take_and_lease(&store, &mut consumer, &a, "sesn_0").await;
    assert_eq!(
        store
            .session(NS, "sesn_0")
            .release_for_replica(&released, true)
            .await
            .unwrap(),
        ReplicaRelease::Requeued
    );
    take_and_lease(&store, &mut consumer, &a, "sesn_1").await;
    store.enqueue(NS, "sesn_2").await.unwrap();
    take_one(&mut consumer, "sesn_2").await;
    past_stale().await;
    let reaped = replicas.reap(&a, false).await.unwrap();
    assert!(reaped.reaped);
    assert_eq!(
        (reaped.sessions, reaped.handed_back),
        (1, 2),
        "sesn_1 taken over; sesn_0's and sesn_2's wake-ups handed back"
    );
    assert_eq!(liveness::beat(&mut own, NS, &a).await.unwrap(), Beat::Dead);
    // Another tenant's user runs none of them on this tenant's keys.
    corral_session::acl::ensure_tenant_user(&mut admin, "team-b", "other")
        .await
        .unwrap();
    let url_b = corral_session::acl::with_credentials(
        &server.url(),
        &corral_session::acl::tenant_user("team-b"),
        "other",
    )
    .unwrap();
    let foreign = Store::connect(&url_b, common::config()).await.unwrap();
    let err = foreign
        .replicas(NS)
        .register(&liveness::new_replica_id("spy"))
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
    let err = foreign.replicas(NS).reap(&b, true).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
}
