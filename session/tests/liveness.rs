//! Replica liveness and replica-mode leases against a real redis-server: a reaped replica's writes are fenced and
//! its sessions woken again, reapers may crash or race, a Redis restart moves no session, and a tenant's own Redis
//! user runs every script.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{agent, start, user};
use corral_session::keys::{Tenant, WAKEUP_GROUP};
use std::time::Instant;

use corral_session::liveness::{self, BEAT_EVERY, Beat, STALE_AFTER, Suspect, SuspectWatch};
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

/// `replica` as a reaper that observed its current last beat sees it.
async fn suspect(store: &Store, replica: &str) -> Suspect {
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(Tenant::new(NS).replicas())
        .arg(replica)
        .query_async(&mut store.connection())
        .await
        .unwrap();
    Suspect {
        replica: replica.to_owned(),
        last_beat_ms: score.map(|s| s as u64),
    }
}

/// The replicas a beat names as suspects.
fn named(beat: Beat) -> Vec<String> {
    match beat {
        Beat::Alive { suspects } => suspects.into_iter().map(|s| s.replica).collect(),
        other => panic!("expected a live beat, got {other:?}"),
    }
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
    assert_eq!(named(beat(&store, &a).await), vec![b.clone()]);
    assert!(!replicas.reap(&suspect(&store, &a).await).await.unwrap().reaped);

    // A stops beating (SIGKILL): b's beat names it, and b reaps it.
    past_stale().await;
    assert_eq!(named(beat(&store, &b).await), vec![a.clone()]);
    let reaped = replicas.reap(&suspect(&store, &a).await).await.unwrap();
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
    assert!(!replicas.reap(&suspect(&store, &a).await).await.unwrap().reaped);
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
    let mut tokens = Vec::new();
    for s in &sessions {
        tokens.push(take_and_lease(&store, &mut consumer, &dead, s).await.token.0);
    }
    // Three wake-ups taken but not yet leased when it died: they are handed back, and its consumer deleted.
    for s in ["sesn_p1", "sesn_p2", "sesn_p3"] {
        store.enqueue(NS, s).await.unwrap();
        take_one(&mut consumer, s).await;
    }
    past_stale().await;
    let seen = suspect(&store, &dead).await;
    let (r1, r2, r3) = tokio::join!(replicas.reap(&seen), replicas.reap(&seen), replicas.reap(&seen));
    let results = [r1.unwrap(), r2.unwrap(), r3.unwrap()];
    assert_eq!(results.iter().filter(|r| r.reaped).count(), 1, "{results:?}");
    assert_eq!(results.iter().map(|r| r.sessions).sum::<u64>(), 60);
    assert_eq!(results.iter().map(|r| r.handed_back).sum::<u64>(), 3);
    let queue = queued(&store, NS).await;
    assert_eq!(queue.len(), 63);
    assert!(queue.values().all(|n| *n == 1), "{queue:?}");
    for (s, token) in sessions.iter().zip(&tokens) {
        assert!(fence(&store, s).await > *token, "{s} taken over");
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
    // REAP_BEGIN writes the tombstone in the same step.
    let _: () = redis::cmd("SET")
        .arg(tenant.replica_reaped(&dead))
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!replicas.reap(&suspect(&store, &dead).await).await.unwrap().reaped);
    assert_eq!(beat(&store, &dead).await, Beat::Dead);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Once it lapses, a live replica's beat names it and the reap is finished.
    let named_now = match beat(&store, &live).await {
        Beat::Alive { suspects } => suspects,
        other => panic!("alive: {other:?}"),
    };
    assert_eq!(
        named_now,
        vec![Suspect {
            replica: dead.clone(),
            last_beat_ms: None
        }]
    );
    let reaped = replicas.reap(&named_now[0]).await.unwrap();
    assert!(reaped.reaped);
    assert_eq!(reaped.sessions, 1);
    assert_eq!(queued(&store, NS).await.get("sesn_1"), Some(&1));
    assert!(named(beat(&store, &live).await).is_empty());
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
    let seen = match liveness::beat(&mut conn, NS, &b).await.unwrap() {
        Beat::Alive { suspects } => suspects,
        other => panic!("b was never reaped: {other:?}"),
    };
    assert_eq!(seen.len(), 1, "a is a suspect until it beats");
    assert_eq!(seen[0].replica, a);
    assert!(matches!(
        liveness::beat(&mut conn, NS, &a).await.unwrap(),
        Beat::Alive { .. }
    ));
    // So a reaper that waited for its own good beats finds a alive, and a's lease and token still hold.
    let mut attempt = 0;
    let reaped = loop {
        // The shared connection reconnects by itself, after a failed command or two.
        match replicas.reap(&seen[0]).await {
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
    let reaped = replicas.reap(&suspect(&store, &a).await).await.unwrap();
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
    let err = foreign.replicas(NS).reap_now(&b).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
}

/// Review bug 1: replica A's `ACQUIRE` stalls in the network, B reaps A, then the `ACQUIRE` lands. The old script
/// gave A the lease (no expiry, in a set no reaper reads again): the session was wedged for good.
#[tokio::test]
async fn an_acquire_that_lands_after_its_replicas_reap_takes_nothing() {
    let (_server, store) = start().await;
    let (a, _b) = two_replicas(&store).await;
    let mut consumer_a = consumer(&store, &a).await;
    let log = store.session(NS, "sesn_1");
    log.append_user([user("hi")]).await.unwrap();
    store.enqueue(NS, "sesn_1").await.unwrap();
    let wakeup = take_one(&mut consumer_a, "sesn_1").await;
    // A's ACQUIRE for that wake-up is on its way; A stops beating and is reaped meanwhile.
    past_stale().await;
    let reaped = store.replicas(NS).reap(&suspect(&store, &a).await).await.unwrap();
    assert_eq!((reaped.reaped, reaped.handed_back), (true, 1));
    assert_eq!(
        log.acquire_for_replica(&a, Some(&wakeup.entry)).await.unwrap(),
        ReplicaAcquire::Dead
    );
    let holder: Option<String> = redis::cmd("HGET")
        .arg(log.keys().lease())
        .arg("holder")
        .query_async(&mut store.connection())
        .await
        .unwrap();
    assert_eq!(holder, None, "the late ACQUIRE took the lease");
    assert_eq!(
        queued(&store, NS).await.get("sesn_1"),
        Some(&1),
        "the handed-back wake-up is still there for a live replica"
    );
}

/// Review bug 2: a forward step of the Redis clock makes every replica a suspect at once. The old reaper reaped a
/// suspect as soon as a beat named it; now it must have seen the same last beat for `STALE_AFTER` of its own clock,
/// and a replica that beats again is never reaped, while one that stopped still is.
#[tokio::test]
async fn a_step_of_the_redis_clock_reaps_nobody_who_keeps_beating() {
    let (_server, store) = start().await;
    let (a, b) = two_replicas(&store).await;
    let replicas = store.replicas(NS);
    // What a's registration looks like right after the Redis clock jumped 5 s ahead: its key expired, its last
    // beat is 5 s old.
    let tenant = Tenant::new(NS);
    let mut conn = store.connection();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(tenant.replica(&a))
        .ignore()
        .cmd("ZADD")
        .arg(tenant.replicas())
        .arg(secs * 1000 + micros / 1000 - 5000)
        .arg(&a)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut watch = SuspectWatch::default();
    let first = match beat(&store, &b).await {
        Beat::Alive { suspects } => suspects,
        other => panic!("{other:?}"),
    };
    assert_eq!(first.len(), 1);
    assert!(
        watch.observe(first.clone(), Instant::now()).is_empty(),
        "ripe at first sight"
    );
    // Both keep beating for longer than the stale time: a never ripens, and the first observation reaps nothing.
    let started = Instant::now();
    while started.elapsed() < STALE_AFTER * 2 {
        tokio::time::sleep(BEAT_EVERY).await;
        assert!(matches!(beat(&store, &a).await, Beat::Alive { .. }));
        if let Beat::Alive { suspects } = beat(&store, &b).await {
            assert!(watch.observe(suspects, Instant::now()).is_empty());
        }
    }
    assert!(!replicas.reap(&first[0]).await.unwrap().reaped, "a beat since");
    // Once a really stops, b's watch ripens it after STALE_AFTER of b's clock, and the reap goes through.
    let stopped = Instant::now();
    let ripe = loop {
        tokio::time::sleep(BEAT_EVERY).await;
        if let Beat::Alive { suspects } = beat(&store, &b).await
            && let Some(ripe) = watch.observe(suspects, Instant::now()).pop()
        {
            break ripe;
        }
        assert!(stopped.elapsed() < Duration::from_secs(5), "a never ripened");
    };
    assert!(stopped.elapsed() >= STALE_AFTER);
    assert!(replicas.reap(&ripe).await.unwrap().reaped);
}

/// Review bug 3: a Redis failover to an asynchronous replica can lose the last `INCR` of a fence together with the
/// lease. The old scripts then issued the same token again, so two holders appended with one token.
#[tokio::test]
async fn a_fence_that_lost_its_last_increment_still_issues_a_larger_token() {
    let (_server, store) = start().await;
    let (a, b) = two_replicas(&store).await;
    let log = store.session(NS, "sesn_1");
    let ReplicaAcquire::Taken(first) = log.acquire_for_replica(&a, None).await.unwrap() else {
        panic!("a takes the session");
    };
    // The failover lost the lease and the fence's last increment.
    let mut conn = store.connection();
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(log.keys().lease())
        .ignore()
        .cmd("SET")
        .arg(log.keys().fence())
        .arg(first.token.0 - 1)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let ReplicaAcquire::Taken(second) = log.acquire_for_replica(&b, None).await.unwrap() else {
        panic!("b takes the session");
    };
    assert!(second.token > first.token, "{second:?} after {first:?}");
    log.append(second.token, [agent("b's")]).await.unwrap();
    assert!(matches!(
        log.append(first.token, [agent("a's")]).await,
        Err(Error::Fenced { .. })
    ));
    // The same holds for the expiring leases of a local harness, and for a reclaim.
    let local = store.session(NS, "sesn_2");
    let held = local
        .acquire_lease("local-1", Duration::from_secs(30))
        .await
        .unwrap();
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(local.keys().lease())
        .ignore()
        .cmd("DEL")
        .arg(local.keys().fence())
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let next = local
        .acquire_lease("local-2", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(next.token > held.token);
}

/// Review bug 3, second part: after Redis lost its data every beat answered `dead` and every replica exited at
/// once. A registration that vanished without a reap now answers `unregistered` (the replica registers again),
/// while a reaped replica still learns it is dead.
#[tokio::test]
async fn a_replica_whose_registration_redis_lost_may_register_again_but_a_reaped_one_is_dead() {
    let (_server, store) = start().await;
    let (a, b) = two_replicas(&store).await;
    let mut conn = store.connection();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    assert_eq!(beat(&store, &a).await, Beat::Unregistered);
    assert!(liveness::register(&mut conn, NS, &a).await.unwrap());
    assert!(matches!(beat(&store, &a).await, Beat::Alive { .. }));
    store.replicas(NS).reap_now(&b).await.unwrap();
    assert_eq!(beat(&store, &b).await, Beat::Dead);
}

/// Review (low): a replica that saw `unregistered` and was reaped before its `REGISTER` landed came back to life,
/// holding sessions another replica had taken over. The tombstone now makes `REGISTER` refuse.
#[tokio::test]
async fn a_replica_reaped_between_unregistered_and_its_register_stays_dead() {
    let (_server, store) = start().await;
    let (a, _b) = two_replicas(&store).await;
    let mut conn = store.connection();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    assert_eq!(beat(&store, &a).await, Beat::Unregistered);
    let _: () = redis::cmd("SET")
        .arg(Tenant::new(NS).replica_reaped(&a))
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!liveness::register(&mut conn, NS, &a).await.unwrap());
    assert_eq!(beat(&store, &a).await, Beat::Dead);
    assert!(store.replicas(NS).register(&a).await.is_err());
}

/// The backstop of review bug 1: a replica-mode lease whose holder is neither registered nor being reaped (however
/// it got there) is taken over by `reclaim_orphaned`, and a live holder's lease is left alone.
#[tokio::test]
async fn an_orphaned_replica_lease_is_reclaimed_and_a_live_ones_kept() {
    let (_server, store) = start().await;
    let (a, _b) = two_replicas(&store).await;
    let ghost = liveness::new_replica_id("harness-gone");
    let orphan = store.session(NS, "sesn_1");
    let ReplicaAcquire::Taken(lost) = orphan.acquire_for_replica(&ghost, None).await.unwrap() else {
        panic!("taken");
    };
    let kept = store.session(NS, "sesn_2");
    let ReplicaAcquire::Taken(held) = kept.acquire_for_replica(&a, None).await.unwrap() else {
        panic!("taken");
    };
    let replicas = store.replicas(NS);
    assert_eq!(replicas.reclaim_orphaned("sesn_1").await.unwrap(), Some(ghost));
    assert_eq!(replicas.reclaim_orphaned("sesn_2").await.unwrap(), None);
    assert_eq!(replicas.reclaim_orphaned("sesn_3").await.unwrap(), None);
    assert!(matches!(
        orphan.append(lost.token, [agent("late")]).await,
        Err(Error::Fenced { .. })
    ));
    kept.append(held.token, [agent("mine")]).await.unwrap();
    assert_eq!(queued(&store, NS).await.get("sesn_1"), Some(&1));
}
