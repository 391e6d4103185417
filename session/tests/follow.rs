//! Many follows share one Redis connection, against a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{start, user};
use corral_session::{Cursor, Store, testing::client_count};

#[tokio::test]
async fn many_followers_share_one_connection_and_each_sees_every_event_in_order() {
    let (_server, store) = start().await;
    // One follow starts the hub: the store's shared connection and the hub's.
    let log = store.session("ns", "sesn_0");
    let first = log.follow(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let baseline = client_count(&store).await.unwrap();

    // 500 followers over 100 sessions, half of them resuming from the start.
    let mut followers = Vec::new();
    for i in 0..500 {
        let log = store.session("ns", &format!("sesn_{}", i % 100));
        let from = (i % 2 == 0).then_some(Cursor::START);
        followers.push((i % 100, log.follow(from).await.unwrap()));
    }
    assert_eq!(store.follow_hub().followed(), 100);
    assert_eq!(
        client_count(&store).await.unwrap(),
        baseline,
        "no connection per follower"
    );

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..5 {
                for s in 0..100 {
                    store
                        .session("ns", &format!("sesn_{s}"))
                        .append_user([user(&format!("{round}"))])
                        .await
                        .unwrap();
                }
            }
        })
    };
    let readers: Vec<_> = followers
        .into_iter()
        .map(|(_, mut follower)| {
            tokio::spawn(async move {
                let mut texts = Vec::new();
                for _ in 0..5 {
                    let event = tokio::time::timeout(Duration::from_secs(10), follower.next())
                        .await
                        .expect("every event arrives")
                        .unwrap();
                    texts.push(common::text_of(&event.event.body));
                }
                texts
            })
        })
        .collect();
    writer.await.unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), ["0", "1", "2", "3", "4"]);
    }
    // The followers resuming from the start caught up themselves, on the one connection kept for such reads.
    assert_eq!(client_count(&store).await.unwrap(), baseline + 1);
    drop(first);
    // Followers gone, their logs leave the hub's read.
    assert_eq!(store.follow_hub().followed(), 0);
}

#[tokio::test]
async fn a_new_follower_is_woken_at_once_not_after_the_hubs_blocking_read() {
    let (server, _) = start().await;
    let mut config = common::config();
    config.block = Duration::from_secs(30);
    let store = Store::connect(&server.url(), config).await.unwrap();
    // The hub blocks on one log for 30 s; a follower of another log must still hear of its events at once.
    let _busy = store.session("ns", "sesn_a").follow(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = store.session("ns", "sesn_b");
    let mut follower = log.follow(None).await.unwrap();
    let started = std::time::Instant::now();
    let writer = tokio::spawn({
        let log = log.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            log.append_user([user("now")]).await.unwrap();
        }
    });
    let event = tokio::time::timeout(Duration::from_secs(5), follower.next())
        .await
        .expect("woken before the hub's read ends")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(common::text_of(&event.event.body), "now");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn followers_of_one_log_share_each_event_and_one_behind_catches_up_in_order() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_shared");
    let early = log.append_user([user("early")]).await.unwrap();
    let mut live: Vec<_> = Vec::new();
    for _ in 0..3 {
        live.push(log.follow(None).await.unwrap());
    }
    log.append_user([user("one"), user("two")]).await.unwrap();
    let mut seen = Vec::new();
    for follower in &mut live {
        let mut events = Vec::new();
        for _ in 0..2 {
            events.push(
                tokio::time::timeout(Duration::from_secs(10), follower.next_shared())
                    .await
                    .expect("every event arrives")
                    .unwrap(),
            );
        }
        seen.push(events);
    }
    for events in &seen[1..] {
        for (a, b) in events.iter().zip(&seen[0]) {
            assert!(
                std::sync::Arc::ptr_eq(a, b),
                "the hub decodes an event once for every follower of its log"
            );
        }
    }
    assert_eq!(common::text_of(&seen[0][1].stored().event.body), "two");
    assert_eq!(
        seen[0][0].json(),
        serde_json::to_string(&seen[0][0].stored().event).unwrap()
    );
    // A follower from before the hub's window reads the log itself, then joins the window: nothing missed or
    // repeated.
    let mut behind = log.follow(Some(Cursor::START)).await.unwrap();
    log.append_user([user("three")]).await.unwrap();
    let mut texts = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(Duration::from_secs(10), behind.next())
            .await
            .expect("every event arrives")
            .unwrap();
        texts.push(common::text_of(&event.event.body));
    }
    assert_eq!(texts, ["early", "one", "two", "three"]);
    assert_eq!(early.len(), 1);
}

/// Waits until `done` holds (checked every 20 ms), failing after 10 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_hub_holds_at_most_its_byte_budget_and_followers_read_what_it_forgot_from_the_log() {
    let (server, _) = start().await;
    let budget = 2 << 20;
    let store = Store::connect(
        &server.url(),
        corral_session::Config {
            follow_hub_bytes: budget,
            ..common::config()
        },
    )
    .await
    .unwrap();
    // Eight logs with a follower each that reads nothing yet, three events of 256 KiB on each: 6 MiB of entries,
    // 12 MiB decoded and as JSON, six times the budget.
    let mut followers = Vec::new();
    for i in 0..8 {
        let log = store.session("ns", &format!("sesn_{i}"));
        followers.push(log.follow(None).await.unwrap());
    }
    let big = "x".repeat(256 << 10);
    for round in 0..3 {
        for i in 0..8 {
            let log = store.session("ns", &format!("sesn_{i}"));
            log.append_user([user(&format!("{round} {big}"))]).await.unwrap();
        }
    }
    let hub = store.follow_hub().clone();
    // The hub has read the last event (its window of that log holds it) and kept within its budget.
    until("the hub reads the appends", || {
        hub.held_bytes() >= 2 * (256 << 10)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = hub.held_bytes();
    assert!(
        held <= budget,
        "the hub holds {held} bytes, over its budget of {budget}"
    );
    assert!(held >= budget / 2, "the newest events stay: {held}");
    for mut follower in followers {
        for round in 0..3 {
            let event = tokio::time::timeout(Duration::from_secs(10), follower.next())
                .await
                .expect("every event arrives")
                .unwrap();
            let text = common::text_of(&event.event.body);
            assert!(text.starts_with(&format!("{round} ")), "in order");
        }
    }
}

#[tokio::test]
async fn a_follower_resuming_from_long_ago_catches_up_itself_the_hub_reads_only_what_is_new() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_long");
    let filler = "y".repeat(64 << 10);
    for i in 0..20 {
        log.append_user([user(&format!("{i} {filler}"))]).await.unwrap();
    }
    let mut follower = log.follow(Some(Cursor::START)).await.unwrap();
    log.append_user([user("last")]).await.unwrap();
    let mut texts = Vec::new();
    for _ in 0..21 {
        let event = tokio::time::timeout(Duration::from_secs(10), follower.next())
            .await
            .expect("every event arrives")
            .unwrap();
        let text = common::text_of(&event.event.body);
        texts.push(text.split(' ').next().unwrap().to_owned());
    }
    let mut expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    expected.push("last".to_owned());
    assert_eq!(texts, expected);
    // The hub took the log up at Redis's clock when the follower came: "last" may have landed before that point
    // (the follower then read it itself), so the hub is shown a newer event to hold.
    log.append_user([user("newer")]).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .expect("the newer event arrives")
        .unwrap();
    assert_eq!(common::text_of(&event.event.body), "newer");
    let hub = store.follow_hub().clone();
    until("the hub reads the new event", || hub.held_bytes() > 0).await;
    let held = hub.held_bytes();
    assert!(
        held < 64 << 10,
        "the hub took up the log at its end, not at the follower's cursor: it holds {held} bytes"
    );
}
