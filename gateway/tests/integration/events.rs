use corral_api::events::EventBody;
use serde_json::{Value, json};

use crate::harness::Gateway;

fn text(t: &str) -> Value {
    json!({ "type": "user.message", "content": [{ "type": "text", "text": t }] })
}

#[tokio::test]
async fn send_echoes_wakes_and_lists_with_every_filter() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let path = format!("/v1/sessions/{id}/events");

    let echo = gw
        .post(&path, &t, json!({ "events": [text("one"), text("two")] }))
        .await
        .ok();
    let data = echo["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data[0]["id"].as_str().unwrap().starts_with("sevt_"));
    assert_eq!(data[1]["content"][0]["text"], "two");
    let queued = gw.store.wakeup_queue(&t.ns).await.unwrap().depth;
    assert_eq!(queued, 1, "a user.message wakes the harness pool");

    // The harness's side of the turn, written as the harness writes it.
    let log = gw.store.session(&t.ns, &id);
    let reply: EventBody = serde_json::from_value(
        json!({ "type": "agent.message", "content": [{ "type": "text", "text": "hello" }] }),
    )
    .unwrap();
    log.append_user([
        reply,
        EventBody::SessionStatusIdle(
            serde_json::from_value(json!({ "stop_reason": { "type": "end_turn" } })).unwrap(),
        ),
    ])
    .await
    .unwrap();
    gw.post(&path, &t, json!({ "events": [{ "type": "user.interrupt" }] }))
        .await
        .ok();
    let queued = gw.store.wakeup_queue(&t.ns).await.unwrap().depth;
    assert_eq!(queued, 2, "an interrupt reaches the harness too");

    let types = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let all = gw.get(&path, &t).await.ok();
    assert_eq!(
        types(&all),
        [
            "user.message",
            "user.message",
            "agent.message",
            "session.status_idle",
            "user.interrupt"
        ]
    );
    assert!(all["data"][2]["processed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(all["next_page"], Value::Null);
    let desc = gw.get(&format!("{path}?order=desc"), &t).await.ok();
    assert_eq!(types(&desc)[0], "user.interrupt");

    // Pages of two, following next_page, give the whole history once.
    let mut seen = vec![];
    let mut page: Option<String> = None;
    loop {
        let url = match &page {
            Some(p) => format!("{path}?limit=2&page={p}"),
            None => format!("{path}?limit=2"),
        };
        let body = gw.get(&url, &t).await.ok();
        seen.extend(body["data"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        match body["next_page"].as_str() {
            Some(p) => page = Some(p.to_owned()),
            None => break,
        }
    }
    let all_ids: Vec<_> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(seen, all_ids);
    assert_eq!(
        gw.get(&format!("{path}?limit=5000"), &t).await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "limit is clamped"
    );

    let only = gw
        .get(
            &format!("{path}?types[]=agent.message&types[]=user.interrupt"),
            &t,
        )
        .await
        .ok();
    assert_eq!(types(&only), ["agent.message", "user.interrupt"]);
    let third = all["data"][2]["processed_at"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let since = gw.get(&format!("{path}?created_at[gte]={third}"), &t).await.ok();
    assert!(
        types(&since).len() >= 3 && types(&since).contains(&"agent.message".to_owned()),
        "{since}"
    );
    let none = gw
        .get(&format!("{path}?created_at[lt]=2000-01-01T00:00:00Z"), &t)
        .await
        .ok();
    assert!(types(&none).is_empty());
    let until = gw
        .get(
            &format!("{path}?order=desc&created_at[lte]=2999-01-01T00:00:00Z&limit=1"),
            &t,
        )
        .await
        .ok();
    assert_eq!(types(&until), ["user.interrupt"]);

    // Errors.
    let msg = gw
        .post(
            &path,
            &t,
            json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "" }] }] }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("events[0].content[0].text"), "{msg}");
    let msg = gw
        .post(
            &path,
            &t,
            json!({ "events": [{ "type": "agent.message", "content": [] }] }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("events[0].type"), "{msg}");
    let msg = gw
        .post(&path, &t, json!({}))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("events"), "{msg}");
    gw.get(&format!("{path}?page=garbage"), &t)
        .await
        .error(400, "invalid_request_error");
    gw.get(&format!("{path}?order=sideways"), &t)
        .await
        .error(400, "invalid_request_error");
    gw.get("/v1/sessions/sesn-missing/events", &t)
        .await
        .error(404, "not_found_error");
    gw.post(
        "/v1/sessions/sesn-missing/events",
        &t,
        json!({ "events": [text("x")] }),
    )
    .await
    .error(404, "not_found_error");
}

#[tokio::test]
async fn a_send_retried_with_its_idempotency_key_is_stored_and_wakes_once() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let url = format!("{}/v1/sessions/{id}/events", gw.url);
    let send = |key: &'static str, body: Value| {
        gw.http
            .post(&url)
            .bearer_auth(&t.key)
            .header("idempotency-key", key)
            .json(&body)
    };

    let first = Gateway::read(
        send("retry-1", json!({ "events": [text("once")] }))
            .send()
            .await
            .unwrap(),
    )
    .await
    .ok();
    let again = Gateway::read(
        send("retry-1", json!({ "events": [text("once")] }))
            .send()
            .await
            .unwrap(),
    )
    .await
    .ok();
    assert_eq!(
        again["data"], first["data"],
        "the retry answers the first send's events, ids included"
    );
    assert!(
        again["data"][0].get("corral").is_none(),
        "no private field reaches the client"
    );

    let other = Gateway::read(
        send("retry-2", json!({ "events": [text("twice")] }))
            .send()
            .await
            .unwrap(),
    )
    .await
    .ok();
    assert_ne!(other["data"][0]["id"], first["data"][0]["id"]);

    let listed = gw.get(&format!("/v1/sessions/{id}/events"), &t).await.ok();
    let texts: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["once", "twice"], "the repeated send was stored once");
    let queued = gw.store.wakeup_queue(&t.ns).await.unwrap().depth;
    assert_eq!(queued, 2, "one wake-up per stored send, none for the repeat");

    let bad = Gateway::read(
        send("no spaces", json!({ "events": [text("x")] }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
}
