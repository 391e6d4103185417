//! Client appends with their wake-up in one step, and idempotency keys, against a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{start, text_of, user};
use corral_api::events::{ContentBlock, EventBody, SystemMessage};
use corral_session::{Config, Order, Store, testing::RedisServer};

fn system(text: &str) -> EventBody {
    EventBody::SystemMessage(SystemMessage {
        content: vec![ContentBlock::text(text)],
    })
}

#[tokio::test]
async fn a_user_message_and_its_wakeup_land_together() {
    let (_server, store) = start().await;
    let log = store.session("team-a", "sesn_1");
    let appended = log.append_user_events([user("hi")], None).await.unwrap();
    assert!(appended.woke && !appended.repeat);
    assert_eq!(text_of(&appended.events[0].event.body), "hi");

    // The wake-up is in the session's shard, and a consumer of the namespace takes it.
    assert_eq!(store.wakeup_queue("team-a").await.unwrap().depth, 1);
    let mut consumer = store
        .wake_consumer("team-a", "harness-0", Duration::from_secs(30))
        .await
        .unwrap();
    let taken = consumer.take(10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].session, "sesn_1");
    assert_eq!(taken[0].shard, log.keys().shard());

    // A system message alone waits for the next turn: no wake-up.
    let quiet = log.append_user_events([system("be brief")], None).await.unwrap();
    assert!(!quiet.woke);
    assert_eq!(store.wakeup_queue("team-a").await.unwrap().depth, 1);
    let stored = log.range(None, 10, Order::Asc).await.unwrap().events;
    assert_eq!(stored.len(), 2);
}

#[tokio::test]
async fn a_repeat_with_the_same_idempotency_key_stores_the_message_once() {
    let (_server, store) = start().await;
    let log = store.session("team-a", "sesn_retry");
    let first = log
        .append_user_events([user("once"), user("twice?")], Some("req-42"))
        .await
        .unwrap();
    assert!(!first.repeat);

    // The client lost the answer and retries: same key, fresh event ids.
    let again = log
        .append_user_events([user("once"), user("twice?")], Some("req-42"))
        .await
        .unwrap();
    assert!(again.repeat && !again.woke);
    assert_eq!(
        again.events, first.events,
        "the first append's events, ids and cursors"
    );
    assert_eq!(log.range(None, 10, Order::Asc).await.unwrap().events.len(), 2);
    assert_eq!(store.wakeup_queue("team-a").await.unwrap().depth, 1);

    // Another key, or the same key on another session, is another append.
    let other = log
        .append_user_events([user("next")], Some("req-43"))
        .await
        .unwrap();
    assert!(!other.repeat);
    let elsewhere = store
        .session("team-a", "sesn_other")
        .append_user_events([user("hello")], Some("req-42"))
        .await
        .unwrap();
    assert!(!elsewhere.repeat);
    assert_eq!(log.range(None, 10, Order::Asc).await.unwrap().events.len(), 3);
}

#[tokio::test]
async fn an_idempotency_key_is_forgotten_after_its_window() {
    let server = RedisServer::start().unwrap();
    let config = Config {
        idempotency_window: Duration::from_millis(300),
        ..common::config()
    };
    let store = Store::connect(&server.url(), config).await.unwrap();
    let log = store.session("ns", "sesn_1");
    log.append_user_events([user("a")], Some("k")).await.unwrap();
    assert!(
        log.append_user_events([user("a")], Some("k"))
            .await
            .unwrap()
            .repeat
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !log.append_user_events([user("a")], Some("k"))
            .await
            .unwrap()
            .repeat
    );
    assert_eq!(log.range(None, 10, Order::Asc).await.unwrap().events.len(), 2);
}

#[tokio::test]
async fn a_tenants_keys_are_under_its_acl_prefix() {
    let (_server, store) = start().await;
    let log = store.session("team-a", "sesn_1");
    log.append_user_events([user("hi")], Some("k")).await.unwrap();
    log.acquire_lease("harness-0", Duration::from_secs(30))
        .await
        .unwrap();
    store
        .record_spend("team-a", "coder", "sesn_1", Default::default())
        .await
        .unwrap();
    let mut conn = store.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    let prefix = corral_session::keys::tenant_prefix("team-a");
    let mut tenant_keys: Vec<&String> = keys.iter().filter(|k| !k.starts_with("corral:sys:")).collect();
    tenant_keys.sort();
    assert_eq!(tenant_keys.len(), 7, "{tenant_keys:?}");
    for key in tenant_keys {
        assert!(key.starts_with(&prefix), "{key}");
    }
}

#[tokio::test]
async fn a_tenants_redis_user_reaches_its_own_keys_and_no_others() {
    let (server, store) = start().await;
    let mut admin = store.connection();
    for tenant in ["team-a", "team-b"] {
        corral_session::acl::ensure_tenant_user(&mut admin, tenant, &format!("{tenant}-secret"))
            .await
            .unwrap();
    }
    // Re-ensuring a user (the operator does it on every reconcile) is idempotent.
    corral_session::acl::ensure_tenant_user(&mut admin, "team-a", "team-a-secret")
        .await
        .unwrap();
    let url = |tenant: &str| {
        corral_session::acl::with_credentials(
            &format!("redis://127.0.0.1:{}/", server.port()),
            &corral_session::acl::tenant_user(tenant),
            &format!("{tenant}-secret"),
        )
        .unwrap()
    };
    let a = Store::connect(&url("team-a"), common::config()).await.unwrap();
    let b = Store::connect(&url("team-b"), common::config()).await.unwrap();

    // Everything a harness and a gateway do for a session works with the tenant's own user.
    let log = a.session("team-a", "sesn_1");
    log.append_user_events([user("hi")], Some("k")).await.unwrap();
    let lease = log
        .acquire_lease("harness-0", Duration::from_secs(30))
        .await
        .unwrap();
    log.append(lease.token, [common::agent("hello")]).await.unwrap();
    let mut consumer = a
        .wake_consumer("team-a", "harness-0", Duration::from_secs(30))
        .await
        .unwrap();
    let taken = consumer.take(1).await.unwrap();
    assert!(consumer.touch(&taken[0]).await.unwrap());
    consumer.ack(&taken[0]).await.unwrap();
    a.record_spend("team-a", "coder", "sesn_1", Default::default())
        .await
        .unwrap();
    assert_eq!(log.range(None, 10, Order::Asc).await.unwrap().events.len(), 2);
    // A follow (the hub's doorbell is under the tenant's prefix) sees the next event at once.
    let mut follower = log.follow(None).await.unwrap();
    log.append(lease.token, [common::agent("followed")])
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(1), follower.next())
        .await
        .expect("delivered before the fallback re-read")
        .unwrap();
    assert_eq!(common::text_of(&next.event.body), "followed");
    assert_eq!(log.range(None, 10, Order::Asc).await.unwrap().events.len(), 3);

    // Tenant B's user can neither read nor write tenant A's session, nor take its wake-ups.
    let foreign = b.session("team-a", "sesn_1");
    for denied in [
        foreign.range(None, 10, Order::Asc).await.err(),
        foreign.append_user_events([user("forged")], None).await.err(),
        b.wake_consumer("team-a", "spy", Duration::from_secs(30))
            .await
            .err(),
    ] {
        let err = denied.expect("refused");
        assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
    }
    assert_eq!(log.range(None, 10, Order::Asc).await.unwrap().events.len(), 3);

    // Nor list other tenants' key or channel names, nor reconfigure or flush Redis.
    let mut raw = b.connection();
    for command in [
        redis::cmd("SCAN").arg(0).clone(),
        redis::cmd("KEYS").arg("*").clone(),
        redis::cmd("RANDOMKEY").clone(),
        redis::cmd("PUBSUB").arg("CHANNELS").clone(),
        redis::cmd("CONFIG").arg("GET").arg("*").clone(),
        redis::cmd("FLUSHALL").clone(),
        redis::cmd("ACL").arg("LIST").clone(),
    ] {
        let err = command.query_async::<redis::Value>(&mut raw).await.unwrap_err();
        assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
    }
    // But it reads the layout version (the harness checks it at start).
    let layout: Option<u32> = redis::cmd("GET")
        .arg(corral_session::keys::system::layout())
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(layout, Some(corral_session::keys::LAYOUT_VERSION));

    // A deleted user's password no longer works.
    corral_session::acl::delete_tenant_user(&mut admin, "team-b")
        .await
        .unwrap();
    assert!(Store::connect(&url("team-b"), common::config()).await.is_err());
}
