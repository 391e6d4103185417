//! The single-writer lease and its fencing token, against a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{agent, start, user};
use corral_session::{Error, Order};

#[tokio::test]
async fn a_stale_writer_is_fenced_after_a_takeover() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_fence");
    let old = log
        .acquire_lease("harness-a", Duration::from_millis(300))
        .await
        .unwrap();
    log.append(old.token, [agent("from a")]).await.unwrap();

    // While the lease runs, nobody else gets it; its holder gets it again with the same token.
    match log.acquire_lease("harness-b", Duration::from_secs(30)).await {
        Err(Error::LeaseHeld { holder, expires_in }) => {
            assert_eq!(holder, "harness-a");
            assert!(expires_in <= Duration::from_millis(300));
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
    assert_eq!(
        log.acquire_lease("harness-a", Duration::from_millis(300))
            .await
            .unwrap()
            .token,
        old.token
    );

    // harness-a pauses past its lease; harness-b takes over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = log
        .acquire_lease("harness-b", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(new.token > old.token);

    // The old writer wakes up: its append is refused and nothing of it is written.
    match log.append(old.token, [agent("late a"), agent("late a 2")]).await {
        Err(Error::Fenced { token, current }) => {
            assert_eq!(token, old.token.0);
            assert_eq!(current, new.token.0);
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(matches!(log.renew(&old).await, Err(Error::LeaseLost { .. })));
    log.release(&old).await.unwrap();

    // The new writer and user-side appends go on.
    log.append(new.token, [agent("from b")]).await.unwrap();
    log.append_user([user("hi")]).await.unwrap();
    log.renew(&new).await.unwrap();
    let texts: Vec<_> = log
        .range(None, 10, Order::Asc)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| common::text_of(&e.event.body))
        .collect();
    assert_eq!(texts, ["from a", "from b", "hi"]);

    // The old writer's release did not free the new writer's lease; the new writer's own does.
    assert!(matches!(
        log.acquire_lease("harness-c", Duration::from_secs(1)).await,
        Err(Error::LeaseHeld { .. })
    ));
    log.release(&new).await.unwrap();
    let third = log
        .acquire_lease("harness-c", Duration::from_secs(1))
        .await
        .unwrap();
    assert!(third.token > new.token);
    assert!(matches!(
        log.append(new.token, [agent("x")]).await,
        Err(Error::Fenced { .. })
    ));
}

#[tokio::test]
async fn a_lease_that_expired_untaken_can_be_renewed() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_renew");
    let lease = log.acquire_lease("h", Duration::from_millis(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    log.renew(&lease).await.unwrap();
    assert!(matches!(
        log.acquire_lease("other", Duration::from_secs(1)).await,
        Err(Error::LeaseHeld { .. })
    ));
    log.append(lease.token, [agent("still mine")]).await.unwrap();
}

#[tokio::test]
async fn concurrent_writers_never_both_write_after_a_takeover() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_race");
    let a = log.acquire_lease("a", Duration::from_millis(50)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = log.acquire_lease("b", Duration::from_secs(30)).await.unwrap();
    // Both hammer the log at once; only b's events land.
    let (ra, rb) = tokio::join!(
        async {
            let mut ok = 0;
            for i in 0..50 {
                if log.append(a.token, [agent(&format!("a{i}"))]).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        },
        async {
            for i in 0..50 {
                log.append(b.token, [agent(&format!("b{i}"))]).await.unwrap();
            }
        }
    );
    let _: () = rb;
    assert_eq!(ra, 0);
    let page = log.range(None, 1000, Order::Asc).await.unwrap();
    assert_eq!(page.events.len(), 50);
    assert!(
        page.events
            .iter()
            .all(|e| common::text_of(&e.event.body).starts_with('b'))
    );
}

#[tokio::test]
async fn bad_lease_arguments_are_errors() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_bad");
    assert!(matches!(
        log.acquire_lease("", Duration::from_secs(1)).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        log.acquire_lease("h", Duration::ZERO).await,
        Err(Error::InvalidArgument(_))
    ));
}
