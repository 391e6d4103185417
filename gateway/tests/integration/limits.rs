//! The size caps as the API answers them, and SSE streams sharing one Redis connection.

use std::time::Duration;

use corral_gateway::{ratelimit::Limiter, state::Settings};
use corral_session::{Config, SessionCaps, testing::client_count};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::harness::Gateway;

fn text(t: &str) -> Value {
    json!({ "type": "user.message", "content": [{ "type": "text", "text": t }] })
}

async fn capped() -> Gateway {
    Gateway::start_with_log(
        Limiter::new(0, 0),
        Settings {
            max_body_bytes: 64 << 10,
            ..Settings::default()
        },
        Config {
            max_event_bytes: 4096,
            session_caps: SessionCaps {
                max_events: 6,
                ..SessionCaps::default()
            },
            ..Config::default()
        },
    )
    .await
}

#[tokio::test]
async fn an_event_a_body_or_a_session_over_its_cap_is_refused_with_the_cap_named() {
    let gw = capped().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let path = format!("/v1/sessions/{id}/events");

    let reply = gw
        .post(
            &path,
            &t,
            json!({ "events": [text("fine"), text(&"x".repeat(5000))] }),
        )
        .await;
    let message = reply.error(413, "invalid_request_error");
    assert!(
        message.starts_with("events[1]: the event is")
            && message.contains("over the limit of 4096 bytes per event"),
        "{message}"
    );
    assert_eq!(reply.body["error"]["details"]["error_code"], "event_too_large");
    let listed = gw.get(&path, &t).await.ok();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        0,
        "nothing of the request was stored"
    );

    let reply = gw
        .post(&path, &t, json!({ "events": [text(&"y".repeat(70 << 10))] }))
        .await;
    let message = reply.error(413, "invalid_request_error");
    assert!(
        message.contains("over the limit of 65536 bytes per request"),
        "{message}"
    );

    let five: Vec<Value> = (0..5).map(|i| text(&format!("m{i}"))).collect();
    gw.post(&path, &t, json!({ "events": five })).await.ok();
    let reply = gw
        .post(&path, &t, json!({ "events": [text("six"), text("seven")] }))
        .await;
    let message = reply.error(400, "invalid_request_error");
    assert!(message.contains("the limit is 6 events per session"), "{message}");
    assert_eq!(reply.body["error"]["details"]["error_code"], "session_log_full");
    gw.post(&path, &t, json!({ "events": [text("six")] })).await.ok();
}

#[tokio::test]
async fn many_sse_streams_share_the_gateways_redis_connections() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let url = format!("{}/v1/sessions/{id}/events/stream", gw.url);
    let open = |n: usize| {
        let gw_http = gw.http.clone();
        let url = url.clone();
        let key = t.key.clone();
        async move {
            let mut streams = Vec::new();
            for _ in 0..n {
                let res = gw_http.get(&url).bearer_auth(&key).send().await.unwrap();
                assert_eq!(res.status(), 200);
                streams.push(res.bytes_stream().eventsource());
            }
            streams
        }
    };
    use eventsource_stream::Eventsource;
    let mut first = open(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = client_count(&gw.store).await.unwrap();
    let mut more = open(200).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client_count(&gw.store).await.unwrap(),
        baseline,
        "no Redis connection per stream"
    );

    gw.post(
        &format!("/v1/sessions/{id}/events"),
        &t,
        json!({ "events": [text("to all")] }),
    )
    .await
    .ok();
    more.append(&mut first);
    for stream in &mut more {
        let event = loop {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("the event arrives")
                .unwrap()
                .unwrap();
            if event.event != "ping" {
                break event;
            }
        };
        assert_eq!(event.event, "user.message");
        assert!(event.data.contains("to all"));
    }
}
