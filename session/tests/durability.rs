//! What survives a redis-server crash (SIGKILL) and restart with the append-only file on, and the errors callers
//! get while Redis is down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{agent, config, start, user};
use corral_session::{Config, Cursor, Error, Order, Store, testing::RedisServer};

/// Retries `f` until Redis is back (the connection reconnects by itself).
async fn until_back<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(value) => return value,
            Err(err) if Instant::now() < deadline => {
                assert!(
                    err.is_transient(),
                    "only transient errors while Redis restarts: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("Redis did not come back: {err}"),
        }
    }
}

#[tokio::test]
async fn acknowledged_events_survive_a_redis_crash() {
    let (mut server, store) = start().await;
    let log = store.session("ns", "sesn_aof");
    let lease = log.acquire_lease("h", Duration::from_secs(60)).await.unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..100 {
        acknowledged.extend(log.append_user([user(&format!("u{i}"))]).await.unwrap());
        acknowledged.extend(log.append(lease.token, [agent(&format!("a{i}"))]).await.unwrap());
    }
    store.enqueue("ns", "sesn_aof").await.unwrap();

    server.kill(); // SIGKILL: no shutdown, no final save

    // While it is down: clear, transient errors.
    let err = log.append_user([user("lost")]).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let err = log.range(None, 1, Order::Asc).await.unwrap_err();
    assert!(err.is_transient(), "{err}");

    server.restart().unwrap();
    let page = until_back(|| log.range(None, 1000, Order::Asc)).await;
    assert_eq!(
        page.events, acknowledged,
        "every acknowledged event is back, in order, unchanged"
    );

    // The fencing token and the queue survived too.
    assert!(matches!(
        log.acquire_lease("other", Duration::from_secs(1)).await,
        Err(Error::LeaseHeld { .. })
    ));
    let mut consumer = store
        .wake_consumer("ns", "c", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(consumer.take(1).await.unwrap()[0].session, "sesn_aof");
    // New appends continue after the old ones.
    let next = log.append(lease.token, [agent("after")]).await.unwrap();
    assert!(next[0].cursor > acknowledged.last().unwrap().cursor);
}

#[tokio::test]
async fn a_follower_carries_on_after_a_redis_restart() {
    let (mut server, store) = start().await;
    let log = store.session("ns", "sesn_follow_restart");
    let first = log.append_user([user("before")]).await.unwrap();
    let mut follower = log.follow(Some(Cursor::START)).await.unwrap();
    assert_eq!(follower.next().await.unwrap(), first[0]);

    server.kill();
    assert!(follower.next().await.unwrap_err().is_transient());
    server.restart().unwrap();
    let after = until_back(|| log.append_user([user("after")])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        match follower.next().await {
            Ok(event) => break event,
            Err(err) if err.is_transient() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("follower did not recover: {err}"),
        }
    };
    assert_eq!(
        next, after[0],
        "the follower resumes where it was: nothing missed, nothing repeated"
    );
}

#[tokio::test]
async fn connecting_to_a_dead_redis_fails_clearly() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    drop(server);
    let started = Instant::now();
    let err = Store::connect(&url, config()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(
        Store::connect("not a url", config()).await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn everysec_servers_also_keep_acknowledged_events_across_a_process_crash() {
    let mut server = RedisServer::start_with(corral_session::testing::Fsync::EverySec).unwrap();
    let store = Store::connect(&server.url(), config()).await.unwrap();
    let log = store.session("ns", "sesn_everysec");
    let appended = log
        .append_user((0..50).map(|i| user(&format!("m{i}"))))
        .await
        .unwrap();
    server.restart().unwrap();
    let page = until_back(|| log.range(None, 100, Order::Asc)).await;
    assert_eq!(page.events, appended);
}

#[tokio::test]
async fn a_stalled_redis_times_out_clearly_and_nothing_is_applied_twice() {
    let server = RedisServer::start().unwrap();
    let store = Store::connect(
        &server.url(),
        corral_session::Config {
            command_timeout: Duration::from_millis(300),
            ..config()
        },
    )
    .await
    .unwrap();
    let log = store.session("ns", "sesn_stall");
    let before = log.append_user([user("before")]).await.unwrap();
    let during = corral_session::NewEvent::from(user("during"));

    server.pause().unwrap();
    let started = Instant::now();
    let err = log.append_user([during.clone()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                operation: "append",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(10));
    server.resume().unwrap();

    // A timed-out write may still land once Redis catches up (its outcome was unknown), but never twice, and the
    // connection's later answers are not mixed up with it.
    let page = until_back(|| log.range(None, 100, Order::Asc)).await;
    let texts: Vec<_> = page
        .events
        .iter()
        .map(|e| common::text_of(&e.event.body))
        .collect();
    assert!(texts == ["before"] || texts == ["before", "during"], "{texts:?}");
    let found = log.find(Some(before[0].cursor), &during.id).await.unwrap();
    assert_eq!(
        found.is_some(),
        texts.len() == 2,
        "find tells whether the timed-out append landed"
    );
    let after = log.append_user([user("after")]).await.unwrap();
    let last = log.last_cursor().await.unwrap();
    assert_eq!(last, Some(after[0].cursor));
}

/// At install the components start beside Redis: a process that connects before Redis answers waits for it
/// (`connect_waiting`) instead of exiting and crash-looping, and one that waits too long still gets the error.
#[tokio::test]
async fn connecting_waits_for_a_redis_that_starts_later() {
    let mut redis = RedisServer::start().unwrap();
    let url = redis.url();
    redis.kill();
    let config = Config {
        connect_timeout: Duration::from_millis(300),
        ..config()
    };
    let impatient = Store::connect_waiting(&url, config.clone(), Duration::from_millis(800)).await;
    assert!(impatient.is_err(), "nothing listens yet");
    let waiting = tokio::spawn(async move {
        let store = Store::connect_waiting(&url, config, Duration::from_secs(60))
            .await
            .expect("connected once Redis started");
        store.session("team-a", "sesn_1").append_user([user("hi")]).await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished());
    redis.restart().unwrap();
    let appended = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(appended.is_ok(), "{appended:?}");
    let bad = Store::connect_waiting("not a url", Config::default(), Duration::from_secs(60)).await;
    assert!(matches!(bad, Err(Error::InvalidArgument(_))));
}
