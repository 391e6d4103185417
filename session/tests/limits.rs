//! Size caps of events and sessions, and Redis running out of memory, against a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{agent, user};
use corral_session::{Config, Error, Order, SessionCaps, Store, testing::RedisServer};

async fn store_with(server: &RedisServer, config: Config) -> Store {
    Store::connect(&server.url(), config).await.expect("connects")
}

#[tokio::test]
async fn an_event_over_the_cap_is_refused_and_nothing_is_written() {
    let server = RedisServer::start().unwrap();
    let store = store_with(
        &server,
        Config {
            max_event_bytes: 1000,
            ..common::config()
        },
    )
    .await;
    let log = store.session("ns", "sesn_big");
    let err = log
        .append_user_events([user("small"), user(&"x".repeat(2000))], None)
        .await
        .unwrap_err();
    match err {
        Error::EventTooLarge { index, size, limit } => {
            assert_eq!((index, limit), (1, 1000));
            assert!(size > 2000, "{size}");
        }
        other => panic!("{other:?}"),
    }
    assert!(log.range(None, 10, Order::Asc).await.unwrap().events.is_empty());
    assert_eq!(
        store.wakeup_queue("ns").await.unwrap().depth,
        0,
        "no wake-up either"
    );
    // Just under the cap is fine.
    log.append_user_events([user(&"x".repeat(900))], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_full_session_refuses_appends_but_a_writer_can_still_close_its_turn() {
    let server = RedisServer::start().unwrap();
    let caps = SessionCaps {
        max_bytes: 0,
        max_events: 10,
        closing_reserve_bytes: 0,
        closing_reserve_events: 2,
    };
    let store = store_with(
        &server,
        Config {
            session_caps: caps,
            ..common::config()
        },
    )
    .await;
    let log = store.session("ns", "sesn_full");
    log.append_user((0..8).map(|i| user(&format!("m{i}"))))
        .await
        .unwrap();
    let err = log
        .append_user([user("9"), user("10"), user("11")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SessionFull {
                unit: "events",
                used: 8,
                limit: 10
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the session's log is full: it holds 8 events, the limit is 10 events per session"
    );
    log.append_user([user("9"), user("10")]).await.unwrap();
    let lease = log.acquire_lease("w", Duration::from_secs(30)).await.unwrap();
    let err = log.append(lease.token, [agent("more")]).await.unwrap_err();
    assert!(matches!(err, Error::SessionFull { .. }), "{err:?}");
    log.append_closing(lease.token, [agent("error"), agent("idle")])
        .await
        .unwrap();
    let err = log
        .append_closing(lease.token, [agent("again")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SessionFull { limit: 12, .. }), "{err:?}");
    assert_eq!(log.range(None, 100, Order::Asc).await.unwrap().events.len(), 12);
    // Deleting the session frees it (the size counter goes with it).
    log.delete().await.unwrap();
    log.append_user([user("fresh")]).await.unwrap();
}

#[tokio::test]
async fn the_byte_cap_counts_every_append_of_the_session() {
    let server = RedisServer::start().unwrap();
    let caps = SessionCaps {
        max_bytes: 10_000,
        max_events: 0,
        ..SessionCaps::default()
    };
    let store = store_with(
        &server,
        Config {
            session_caps: caps,
            ..common::config()
        },
    )
    .await;
    let log = store.session("ns", "sesn_bytes");
    let other = store.session("ns", "sesn_other");
    let mut stored = 0;
    let err = loop {
        match log.append_user([user(&"y".repeat(900))]).await {
            Ok(_) => stored += 1,
            Err(err) => break err,
        }
    };
    assert!((9..=10).contains(&stored), "{stored}");
    match err {
        Error::SessionFull { unit, used, limit } => {
            assert_eq!((unit, limit), ("bytes", 10_000));
            assert!(used > 9_000 && used <= 10_000, "{used}");
        }
        other => panic!("{other:?}"),
    }
    other.append_user([user(&"y".repeat(900))]).await.unwrap();
}

#[tokio::test]
async fn redis_out_of_memory_is_a_clear_error_and_nothing_is_lost() {
    let (server, store) = common::start().await;
    let log = store.session("ns", "sesn_oom");
    let kept = log.append_user([user("before")]).await.unwrap();
    let mut conn = store.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = log.append_user([user("after")]).await.unwrap_err();
    assert!(matches!(err, Error::OutOfMemory(_)), "{err:?}");
    assert!(err.is_transient(), "retry later");
    assert!(err.to_string().contains("out of memory"), "{err}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let events = log.range(None, 10, Order::Asc).await.unwrap().events;
    assert_eq!(events, kept, "the log is as it was");
    drop(server);
}

#[tokio::test]
async fn the_store_reports_redis_memory() {
    let (_server, store) = common::start().await;
    let mut conn = store.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("512mb")
        .query_async(&mut conn)
        .await
        .unwrap();
    let memory = store.memory().await.unwrap();
    assert!(memory.used > 0);
    assert_eq!(memory.max, 512 << 20);
    assert_eq!(memory.policy, "noeviction", "Redis's default, and the chart's");
}
