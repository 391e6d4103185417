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
    let budget = 2 << 20;
    let (_server, store) = common::start_with(corral_session::Config {
        follow_hub_bytes: budget,
        ..common::config()
    })
    .await;
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

/// Reads `n` events from `follower` (10 s each at most); answers the first word of each one's text.
async fn first_words(follower: &mut corral_session::Follower, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    for _ in 0..n {
        let event = tokio::time::timeout(Duration::from_secs(10), follower.next())
            .await
            .expect("every event arrives")
            .unwrap();
        let text = common::text_of(&event.event.body);
        words.push(text.split(' ').next().unwrap().to_owned());
    }
    words
}

#[tokio::test]
async fn one_tenants_many_large_windows_trim_only_its_own_and_another_tenants_follower_never_reads_redis() {
    let budget = 4 << 20;
    let (_server, store) = common::start_with(corral_session::Config {
        follow_hub_bytes: budget,
        ..common::config()
    })
    .await;
    // Tenant B follows one log and gets four events of 128 KiB: a 512 KiB window (1 MiB held), a quarter of the
    // budget, larger than any one window of tenant A's.
    let b_log = store.session("tenant-b", "sesn_b");
    let mut b = b_log.follow(None).await.unwrap();
    let b_event = "b".repeat(128 << 10);
    for i in 0..4 {
        b_log
            .append_user([user(&format!("{i} {b_event}"))])
            .await
            .unwrap();
    }
    let hub = store.follow_hub().clone();
    until("the hub reads B's events", || hub.held_bytes() >= 1 << 20).await;

    // Tenant A follows 40 logs with two events of 64 KiB each: 5 MiB of entries, 10 MiB held, over twice the budget.
    let mut a = Vec::new();
    for s in 0..40 {
        a.push(
            store
                .session("tenant-a", &format!("sesn_{s}"))
                .follow(None)
                .await
                .unwrap(),
        );
    }
    let a_event = "a".repeat(64 << 10);
    for i in 0..2 {
        for s in 0..40 {
            let log = store.session("tenant-a", &format!("sesn_{s}"));
            log.append_user([user(&format!("{i} {a_event}"))]).await.unwrap();
        }
    }
    // About 3.5 MiB of entries must go to bring 5.5 MiB within the budget's 2 MiB (twice counted).
    until("the hub forgets what passes its budget", || {
        hub.stats().forgotten_process_budget_bytes >= 3 << 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = hub.stats();
    assert!(stats.held_bytes <= budget, "{stats:?}");
    assert_eq!(stats.forgotten_tenant_cap_bytes, 0, "no tenant cap set");

    // B's window stayed whole: its follower gets every event from the hub and never reads Redis itself.
    assert_eq!(first_words(&mut b, 4).await, ["0", "1", "2", "3"]);
    assert_eq!(
        b.catch_up_reads(),
        0,
        "tenant A's windows cost tenant B's follower a read of its own: {stats:?}"
    );
    // A's followers read what the hub forgot of A's windows from the log: nothing lost or reordered.
    let mut a_reads = 0;
    for follower in &mut a {
        assert_eq!(first_words(follower, 2).await, ["0", "1"]);
        a_reads += follower.catch_up_reads();
    }
    assert!(a_reads > 0, "A paid for its own excess: {:?}", hub.stats());
}

#[tokio::test]
async fn a_tenants_catch_up_reads_in_flight_never_pass_its_cap_and_its_followers_lose_nothing() {
    let cap = 2;
    let (_server, store) = common::start_with(corral_session::Config {
        follow_catch_up_reads: cap,
        ..common::config()
    })
    .await;
    // Two tenants, 16 logs each with 12 events of 32 KiB: every follower resumes from the start, so each reads the
    // log itself (several reads: the first asks for two events, the size of the largest allowed).
    let filler = "z".repeat(32 << 10);
    for tenant in ["tenant-a", "tenant-b"] {
        for s in 0..16 {
            let log = store.session(tenant, &format!("sesn_{s}"));
            for i in 0..12 {
                log.append_user([user(&format!("{i} {filler}"))]).await.unwrap();
            }
        }
    }
    let mut readers = Vec::new();
    for tenant in ["tenant-a", "tenant-b"] {
        for s in 0..16 {
            let log = store.session(tenant, &format!("sesn_{s}"));
            readers.push(tokio::spawn(async move {
                let mut follower = log.follow(Some(Cursor::START)).await.unwrap();
                let words = first_words(&mut follower, 12).await;
                (words, follower.catch_up_reads(), follower)
            }));
        }
    }
    let expected: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    let mut followers = Vec::new();
    for reader in readers {
        let (words, reads, follower) = reader.await.unwrap();
        assert_eq!(words, expected, "every event, in order");
        assert!(reads >= 2, "caught up by reading the log: {reads} reads");
        followers.push(follower);
    }
    let stats = store.follow_hub().stats();
    assert_eq!(
        stats.catch_up_peak_per_tenant, cap,
        "at most {cap} reads in flight per tenant (and the followers did read at once): {stats:?}"
    );
    assert_eq!(stats.catch_up_in_flight, 0);
    assert!(stats.catch_up_reads >= 64, "{stats:?}");
}

#[tokio::test]
async fn a_tenant_cap_trims_only_that_tenants_windows() {
    let tenant_cap = 1 << 20;
    let (_server, store) = common::start_with(corral_session::Config {
        follow_hub_tenant_bytes: tenant_cap,
        ..common::config()
    })
    .await;
    let event = "c".repeat(128 << 10);
    // Tenant B: one log, two events, 512 KiB held: within the cap.
    let b_log = store.session("tenant-b", "sesn_b");
    let mut b = b_log.follow(None).await.unwrap();
    for i in 0..2 {
        b_log.append_user([user(&format!("{i} {event}"))]).await.unwrap();
    }
    let hub = store.follow_hub().clone();
    until("the hub reads B's events", || hub.held_bytes() >= 512 << 10).await;
    // Tenant A: eight logs, two events each, 4 MiB held: four times the cap, far within the process's budget.
    let mut a = Vec::new();
    for s in 0..8 {
        let log = store.session("tenant-a", &format!("sesn_{s}"));
        a.push(log.follow(None).await.unwrap());
    }
    for i in 0..2 {
        for s in 0..8 {
            let log = store.session("tenant-a", &format!("sesn_{s}"));
            log.append_user([user(&format!("{i} {event}"))]).await.unwrap();
        }
    }
    until("the hub keeps A within its cap", || {
        hub.stats().forgotten_tenant_cap_bytes >= 3 * (128 << 10) * 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = hub.stats();
    assert_eq!(stats.forgotten_process_budget_bytes, 0, "{stats:?}");
    assert!(
        stats.held_bytes <= tenant_cap + (512 << 10) + (16 << 10),
        "A holds at most its cap beside B's window: {stats:?}"
    );
    assert_eq!(first_words(&mut b, 2).await, ["0", "1"]);
    assert_eq!(b.catch_up_reads(), 0, "B's window stayed whole: {stats:?}");
    for follower in &mut a {
        assert_eq!(first_words(follower, 2).await, ["0", "1"]);
    }
}

#[tokio::test]
async fn a_tenant_waiting_for_catch_up_reads_never_holds_up_another_tenants() {
    let (_server, store) = common::start_with(corral_session::Config {
        follow_catch_up_reads: 1,
        ..common::config()
    })
    .await;
    // Tenant A: 16 logs of six 256 KiB events, every follower resuming from the start: about 32 reads, one at a time.
    let filler = "a".repeat(256 << 10);
    for s in 0..16 {
        let log = store.session("tenant-a", &format!("sesn_{s}"));
        for i in 0..6 {
            log.append_user([user(&format!("{i} {filler}"))]).await.unwrap();
        }
    }
    let b_log = store.session("tenant-b", "sesn_b");
    for i in 0..3 {
        b_log.append_user([user(&format!("{i} small"))]).await.unwrap();
    }
    let a_done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut a = Vec::new();
    for s in 0..16 {
        let log = store.session("tenant-a", &format!("sesn_{s}"));
        let done = a_done.clone();
        a.push(tokio::spawn(async move {
            let mut follower = log.follow(Some(Cursor::START)).await.unwrap();
            let words = first_words(&mut follower, 6).await;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            words
        }));
    }
    let hub = store.follow_hub().clone();
    until("A's followers read the log", || hub.stats().catch_up_reads >= 2).await;

    // B's follower catches up (two reads) with its own permit: a few of A's reads happen meanwhile (measured: 3 to
    // 6), not the rest of A's queue (with one queue for every tenant: 26, and all of A's followers done first).
    let before = hub.stats().catch_up_reads;
    let a_finished_before = a_done.load(std::sync::atomic::Ordering::SeqCst);
    let mut b = b_log.follow(Some(Cursor::START)).await.unwrap();
    assert_eq!(first_words(&mut b, 3).await, ["0", "1", "2"]);
    let during = hub.stats().catch_up_reads - before;
    let a_finished = a_done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(a_finished_before < 16, "A was still catching up when B started");
    assert!(
        during < 16 && a_finished < 8,
        "B waited behind A's queue: {during} reads were made while B caught up ({} of B's own); \
         {a_finished_before} of A's 16 followers had caught up before, {a_finished} after",
        b.catch_up_reads()
    );
    let expected: Vec<String> = (0..6).map(|i| i.to_string()).collect();
    for reader in a {
        assert_eq!(reader.await.unwrap(), expected);
    }
}
