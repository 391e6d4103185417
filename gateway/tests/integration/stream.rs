use std::time::Duration;

use corral_api::events::EventBody;
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::json;

use crate::harness::{Gateway, Tenant};

/// Guards reads so that a broken stream fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

async fn open(
    gw: &Gateway,
    t: &Tenant,
    id: &str,
    last_event_id: Option<&str>,
    query: &str,
) -> impl Stream<Item = Event> + Unpin + use<> {
    let mut req = gw
        .http
        .get(format!("{}/v1/sessions/{id}/events/stream{query}", gw.url))
        .bearer_auth(&t.key)
        .header("accept", "application/json");
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert!(res.headers().contains_key("request-id"));
    Box::pin(
        res.bytes_stream()
            .eventsource()
            .map(|e| e.expect("well-formed SSE")),
    )
}

async fn next(stream: &mut (impl Stream<Item = Event> + Unpin)) -> Option<Event> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event or the end in time")
}

/// The next event that is not a ping.
async fn next_event(stream: &mut (impl Stream<Item = Event> + Unpin)) -> Option<Event> {
    loop {
        let e = next(stream).await?;
        if e.event != "ping" {
            return Some(e);
        }
    }
}

fn agent_message(text: &str) -> EventBody {
    serde_json::from_value(json!({ "type": "agent.message", "content": [{ "type": "text", "text": text }] }))
        .unwrap()
}

#[tokio::test]
async fn reconnecting_with_last_event_id_gets_every_event_exactly_once() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let log = gw.store.session(&t.ns, &id);

    let mut first = open(&gw, &t, &id, None, "").await;
    let send = gw
        .post(
            &format!("/v1/sessions/{id}/events"),
            &t,
            json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
        )
        .await
        .ok();
    log.append_user((0..3).map(|i| agent_message(&format!("part {i}"))))
        .await
        .unwrap();

    let mut received = vec![];
    for _ in 0..2 {
        let e = next_event(&mut first).await.expect("event");
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(data["type"], e.event, "event: names the JSON type");
        received.push((e.id.clone(), data["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        received[0].1,
        send["data"][0]["id"].as_str().unwrap(),
        "user events are echoed on the stream"
    );
    drop(first); // the client goes away mid-turn

    // More of the turn happens while nobody listens.
    log.append_user([
        agent_message("part 3"),
        EventBody::SessionStatusIdle(
            serde_json::from_value(json!({ "stop_reason": { "type": "end_turn" } })).unwrap(),
        ),
    ])
    .await
    .unwrap();
    let last_seen = received.last().unwrap().0.clone();
    let mut second = open(&gw, &t, &id, Some(&last_seen), "").await;
    // The stream stays open across turns: a later turn arrives on the same connection.
    gw.post(
        &format!("/v1/sessions/{id}/events"),
        &t,
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "again" }] }] }),
    )
    .await
    .ok();
    log.append_user([EventBody::SessionStatusTerminated(Default::default())])
        .await
        .unwrap();
    while let Some(e) = next_event(&mut second).await {
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        received.push((e.id.clone(), data["id"].as_str().unwrap().to_owned()));
    }
    // The stream ended by itself after session.status_terminated.

    let history = gw
        .get(&format!("/v1/sessions/{id}/events?limit=1000"), &t)
        .await
        .ok();
    let expected: Vec<String> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let got: Vec<String> = received.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(got, expected, "every event once, in log order");
    assert_eq!(expected.len(), 8);

    // `?after=` resumes the same way, from any cursor.
    let mut third = open(&gw, &t, &id, None, &format!("?after={}", received[5].0)).await;
    let e = next_event(&mut third).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["id"],
        json!(received[6].1)
    );
}

#[tokio::test]
async fn streams_ping_when_idle_and_end_on_delete() {
    let gw = Gateway::start_with(
        corral_gateway::ratelimit::Limiter::new(0, 0),
        Duration::from_millis(200),
    )
    .await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let mut stream = open(&gw, &t, &id, None, "").await;
    let ping = next(&mut stream).await.unwrap();
    assert_eq!((ping.event.as_str(), ping.data.as_str()), ("ping", "{}"));
    gw.delete(&format!("/v1/sessions/{id}"), &t).await.ok();
    let e = next_event(&mut stream).await.unwrap();
    assert_eq!(e.event, "session.deleted");
    assert!(
        next_event(&mut stream).await.is_none(),
        "session.deleted ends the stream"
    );
}

#[tokio::test]
async fn stream_errors() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    gw.get("/v1/sessions/sesn-missing/events/stream", &t)
        .await
        .error(404, "not_found_error");
    let res = gw
        .http
        .get(format!("{}/v1/sessions/{id}/events/stream", gw.url))
        .bearer_auth(&t.key)
        .header("last-event-id", "not-a-cursor")
        .send()
        .await
        .unwrap();
    let msg = Gateway::read(res).await.error(400, "invalid_request_error");
    assert!(msg.starts_with("Last-Event-ID:"), "{msg}");
    gw.get(&format!("/v1/sessions/{id}/events/stream?after=x"), &t)
        .await
        .error(400, "invalid_request_error");
    // A cursor past the log's end was never this stream's (review: it held the follow hub's read in the future);
    // the start of the log always is one.
    let msg = gw
        .get(
            &format!("/v1/sessions/{id}/events/stream?after=99999999999999-0"),
            &t,
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.contains("past the end"), "{msg}");
    let res = gw
        .http
        .get(format!("{}/v1/sessions/{id}/events/stream?after=0-0", gw.url))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn shutdown_ends_streams_with_a_comment_line() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let res = gw
        .http
        .get(format!("{}/v1/sessions/{id}/events/stream", gw.url))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = tokio::spawn(async move { res.text().await });
    // Let the request reach the handler before stopping the server.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(format!("{}/metrics", gw.metrics_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("corral_gateway_sse_clients 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metrics.contains("corral_gateway_sse_clients 1"), "{metrics}");
    tokio::time::timeout(WAIT, gw.shutdown())
        .await
        .expect("the server stops")
        .unwrap();
    let text = tokio::time::timeout(WAIT, body).await.unwrap().unwrap().unwrap();
    assert!(text.ends_with(": shutting down\n\n"), "{text:?}");
}

#[tokio::test]
async fn a_terminated_session_streams_nothing_without_a_cursor() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let log = gw.store.session(&t.ns, &id);
    let stored = log
        .append_user([
            agent_message("last words"),
            EventBody::SessionStatusTerminated(Default::default()),
        ])
        .await
        .unwrap();
    // The harness records the phase in the Session's status.
    let sessions: kube::Api<corral_api::Session> = kube::Api::namespaced(gw.kube.clone(), &t.ns);
    let patch = json!({ "status": { "phase": "terminated" } });
    sessions
        .patch_status(
            &id,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    assert_eq!(
        gw.get(&format!("/v1/sessions/{id}"), &t).await.ok()["status"],
        "terminated"
    );
    let mut stream = open(&gw, &t, &id, None, "").await;
    assert!(next_event(&mut stream).await.is_none(), "ends at once");
    // With a cursor it replays what followed, through the terminal event.
    let mut replay = open(&gw, &t, &id, Some(&stored[0].cursor.to_string()), "").await;
    assert_eq!(
        next_event(&mut replay).await.unwrap().event,
        "session.status_terminated"
    );
    assert!(next_event(&mut replay).await.is_none());
}
