//! Appends, range reads and follows against a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{agent, start, text_of, user};
use corral_api::events::{EventBody, EventId, format_rfc3339_millis};
use corral_session::{Cursor, Error, NewEvent, Order, StoredEvent};

#[tokio::test]
async fn appends_keep_order_and_get_ids_and_times() {
    let (_server, store) = start().await;
    let log = store.session("team-a", "sesn_1");
    let first = log.append_user([user("u0"), user("u1")]).await.unwrap();
    let lease = log
        .acquire_lease("harness-0", Duration::from_secs(30))
        .await
        .unwrap();
    let chosen = EventId::generate();
    let second = log
        .append(
            lease.token,
            [NewEvent::with_id(chosen.clone(), agent("a0")), agent("a1").into()],
        )
        .await
        .unwrap();
    assert_eq!(
        second[0].event.id, chosen,
        "an id chosen before the append is kept"
    );

    let page = log.range(None, 100, Order::Asc).await.unwrap();
    assert_eq!(page.next, None);
    let texts: Vec<_> = page.events.iter().map(|e| text_of(&e.event.body)).collect();
    assert_eq!(texts, ["u0", "u1", "a0", "a1"]);
    let appended: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_eq!(page.events, appended, "what append returned is what is stored");
    for pair in page.events.windows(2) {
        assert!(pair[0].cursor < pair[1].cursor);
        assert!(pair[0].event.processed_at <= pair[1].event.processed_at);
        assert_ne!(pair[0].event.id, pair[1].event.id);
    }
    for stored in &page.events {
        assert!(stored.event.id.as_str().starts_with("sevt_"));
        assert_eq!(stored.event.processed_at, Some(stored.cursor.time()));
    }
    // The wire JSON has the API's shape.
    let json = serde_json::to_value(&page.events[2].event).unwrap();
    assert_eq!(json["type"], "agent.message");
    assert_eq!(json["id"], chosen.as_str());
    assert_eq!(json["content"][0]["text"], "a0");
    assert_eq!(
        json["processed_at"],
        format_rfc3339_millis(&page.events[2].cursor.time())
    );
    assert_eq!(log.last_cursor().await.unwrap(), Some(page.events[3].cursor));
}

#[tokio::test]
async fn range_pages_both_ways_from_any_cursor() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_pages");
    assert_eq!(log.range(None, 5, Order::Asc).await.unwrap().events, vec![]);
    assert_eq!(log.last_cursor().await.unwrap(), None);
    let mut all = Vec::new();
    for batch in 0..5 {
        all.extend(
            log.append_user((0..5).map(|i| user(&format!("m{}", batch * 5 + i))))
                .await
                .unwrap(),
        );
    }

    let collect = |order: Order| {
        let log = log.clone();
        async move {
            let mut seen: Vec<StoredEvent> = Vec::new();
            let mut after = None;
            let mut pages = 0;
            loop {
                let page = log.range(after, 7, order).await.unwrap();
                assert!(page.events.len() <= 7);
                pages += 1;
                seen.extend(page.events);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            (seen, pages)
        }
    };
    let (asc, pages) = collect(Order::Asc).await;
    assert_eq!(asc, all);
    assert_eq!(pages, 4);
    let (desc, _) = collect(Order::Desc).await;
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(desc, reversed);

    // An exact fit ends with no next page.
    let page = log.range(Some(all[19].cursor), 5, Order::Asc).await.unwrap();
    assert_eq!(page.events, all[20..]);
    assert_eq!(page.next, None);
    let page = log.range(Some(all[5].cursor), 5, Order::Desc).await.unwrap();
    assert_eq!(page.events, all[..5].iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(page.next, None);

    // Time filters map onto cursors.
    let from = Cursor::before_time(all[10].cursor.time());
    let page = log.range(Some(from), 100, Order::Asc).await.unwrap();
    assert!(page.events.first().unwrap().cursor <= all[10].cursor);

    assert!(matches!(
        log.range(None, 0, Order::Asc).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!("12".parse::<Cursor>(), Err(Error::InvalidCursor(_))));
}

#[tokio::test]
async fn a_follower_resumes_from_its_cursor_without_loss_or_duplicates() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_follow");
    let before = log.append_user([user("old")]).await.unwrap();
    let mut follower = log.follow(None).await.unwrap();

    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            let lease = log.acquire_lease("w", Duration::from_secs(30)).await.unwrap();
            let mut ids = Vec::new();
            for batch in 0..20 {
                let events = (0..5).map(|i| agent(&format!("e{}", batch * 5 + i)));
                ids.extend(
                    log.append(lease.token, events)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|e| e.event.id),
                );
                tokio::task::yield_now().await;
            }
            ids
        })
    };

    let mut seen = Vec::new();
    for _ in 0..37 {
        seen.push(follower.next().await.unwrap());
    }
    // The reader goes away and comes back with the last cursor it saw.
    let cursor = follower.cursor();
    assert_eq!(cursor, seen.last().unwrap().cursor);
    drop(follower);
    let mut follower = log.follow(Some(cursor)).await.unwrap();
    for _ in 37..100 {
        seen.push(follower.next().await.unwrap());
    }
    let written = writer.await.unwrap();
    let seen_ids: Vec<_> = seen.iter().map(|e| e.event.id.clone()).collect();
    assert_eq!(
        seen_ids, written,
        "every event once, in order, and not the one before the follow began"
    );

    // Nothing more arrives; a follow from the start replays the whole log as a stream.
    let waited = tokio::time::timeout(Duration::from_millis(500), follower.next()).await;
    assert!(waited.is_err(), "no event after the last one: {waited:?}");
    use futures::StreamExt;
    let replay: Vec<_> = log
        .follow(Some(Cursor::START))
        .await
        .unwrap()
        .into_stream()
        .take(101)
        .collect()
        .await;
    assert_eq!(replay[0].as_ref().unwrap().event.id, before[0].event.id);
    assert_eq!(
        replay.last().unwrap().as_ref().unwrap().event.id,
        *written.last().unwrap()
    );
}

#[tokio::test]
async fn unknown_event_types_in_a_log_read_and_damaged_entries_are_skipped() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_raw");
    log.append_user([user("a")]).await.unwrap();
    let mut conn = store.connection();
    let raw = r#"{"type":"workflow_run.created","workflow_run_id":"wr_1","name":"n","phases":[]}"#;
    let _: String = redis::cmd("XADD")
        .arg(log.keys().events())
        .arg("*")
        .arg("id")
        .arg("sevt_foreign")
        .arg("type")
        .arg("workflow_run.created")
        .arg("data")
        .arg(raw)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(log.keys().events())
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    log.append_user([user("b")]).await.unwrap();

    let page = log.range(None, 10, Order::Asc).await.unwrap();
    let types: Vec<_> = page
        .events
        .iter()
        .map(|e| e.event.type_name().to_owned())
        .collect();
    assert_eq!(types, ["user.message", "workflow_run.created", "user.message"]);
    let EventBody::Other(body) = &page.events[1].event.body else {
        panic!()
    };
    assert_eq!(body["workflow_run_id"], "wr_1");
    let json = serde_json::to_value(&page.events[1].event).unwrap();
    assert_eq!(json["id"], "sevt_foreign");
    assert_eq!(json["phases"], serde_json::json!([]));

    let mut follower = log.follow(Some(Cursor::START)).await.unwrap();
    let mut followed = Vec::new();
    for _ in 0..3 {
        followed.push(follower.next().await.unwrap());
    }
    assert_eq!(followed, page.events);
}

#[tokio::test]
async fn deleting_a_log_removes_it() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_del");
    log.append_user([user("a")]).await.unwrap();
    log.acquire_lease("h", Duration::from_secs(5)).await.unwrap();
    let outputs = corral_session::keys::Tenant::new("ns")
        .files()
        .outputs("sesn_del");
    let _: () = redis::cmd("HSET")
        .arg(&outputs)
        .arg("report.md")
        .arg("file_1 3:1")
        .query_async(&mut store.connection())
        .await
        .unwrap();
    corral_session::delete_session_log(&mut store.connection(), "ns", "sesn_del")
        .await
        .unwrap();
    assert!(log.range(None, 10, Order::Asc).await.unwrap().events.is_empty());
    let left: i64 = redis::cmd("EXISTS")
        .arg(&outputs)
        .query_async(&mut store.connection())
        .await
        .unwrap();
    assert_eq!(left, 0, "the record of the session's outputs goes with it");
    log.delete().await.unwrap();
    log.acquire_lease("other", Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_recorded_spec_generation_only_rises_and_goes_with_the_session() {
    let (_server, store) = start().await;
    let log = store.session("ns", "sesn_spec");
    assert_eq!(log.spec_generation().await.unwrap(), 0, "none recorded");
    log.raise_spec_generation(3).await.unwrap();
    // A slower writer of an older generation does not lower it.
    log.raise_spec_generation(2).await.unwrap();
    assert_eq!(log.spec_generation().await.unwrap(), 3);
    log.raise_spec_generation(4).await.unwrap();
    assert_eq!(log.spec_generation().await.unwrap(), 4);
    // It only has to outlast a watch's lag: it expires, so a raise racing the deletion below leaves nothing for good.
    let mut conn = store.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*sesn_spec*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let most = corral_session::SPEC_GENERATION_TTL.as_millis() as i64;
    assert!(ttl > most - 60_000 && ttl <= most, "{ttl}");
    log.delete().await.unwrap();
    assert_eq!(log.spec_generation().await.unwrap(), 0);
}
