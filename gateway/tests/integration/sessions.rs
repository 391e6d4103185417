use corral_api::events::EventBody;
use corral_session::Order;
use serde_json::json;

use crate::harness::Gateway;

#[tokio::test]
async fn sessions_create_retrieve_update_list_archive_delete() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let agent = gw
        .post(
            "/v1/agents",
            &t,
            json!({ "name": "a", "model": "m", "system": "first" }),
        )
        .await
        .ok();
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let env = gw.post("/v1/environments", &t, json!({ "name": "e" })).await.ok();
    let env_id = env["id"].as_str().unwrap().to_owned();

    let session = gw
        .post(
            "/v1/sessions",
            &t,
            json!({
                "agent": agent_id, "environment_id": env_id, "title": "hello", "metadata": { "k": "v" },
                "initial_events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }]
            }),
        )
        .await
        .ok();
    let id = session["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sesn-"), "{id}");
    assert_eq!(session["status"], "idle");
    assert_eq!(session["agent"]["id"], json!(agent_id));
    assert_eq!(session["agent"]["version"], 1);
    assert_eq!(session["agent"]["system"], "first");
    assert_eq!(session["environment_id"], json!(env_id));
    assert_eq!(session["resources"], json!([]));
    assert_eq!(session["usage"], json!({}));
    assert!(session["stats"]["duration_seconds"].is_number());

    // The initial message is in the log and the harness pool was woken.
    let log = gw.store.session(&t.ns, &id);
    let page = log.range(None, 10, Order::Asc).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event.type_name(), "user.message");
    let queued = gw.store.wakeup_queue(&t.ns).await.unwrap().depth;
    assert_eq!(queued, 1);

    // A later agent version does not change the session's snapshot; a session may pin an older version.
    gw.post(
        &format!("/v1/agents/{agent_id}"),
        &t,
        json!({ "system": "second" }),
    )
    .await
    .ok();
    let got = gw.get(&format!("/v1/sessions/{id}"), &t).await.ok();
    assert_eq!(
        (got["agent"]["version"].clone(), got["agent"]["system"].clone()),
        (json!(1), json!("first"))
    );
    let pinned = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": { "type": "agent", "id": agent_id, "version": 1 }, "environment_id": env_id }),
        )
        .await
        .ok();
    assert_eq!(pinned["agent"]["version"], 1);
    let latest = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent_id, "environment_id": env_id }),
        )
        .await
        .ok();
    assert_eq!(
        (
            latest["agent"]["version"].clone(),
            latest["agent"]["system"].clone()
        ),
        (json!(2), json!("second"))
    );
    gw.post(
        "/v1/sessions",
        &t,
        json!({ "agent": { "type": "agent", "id": agent_id, "version": 7 }, "environment_id": env_id }),
    )
    .await
    .error(404, "not_found_error");

    // Update: title and metadata, with a session.updated event.
    let upd = gw
        .post(
            &format!("/v1/sessions/{id}"),
            &t,
            json!({ "title": null, "metadata": { "k": null, "n": "1" } }),
        )
        .await
        .ok();
    assert_eq!(upd["title"], serde_json::Value::Null);
    assert_eq!(upd["metadata"], json!({ "n": "1" }));
    let events = log.range(None, 10, Order::Asc).await.unwrap().events;
    let updated = events
        .iter()
        .find(|e| e.event.type_name() == "session.updated")
        .expect("session.updated");
    assert_eq!(
        serde_json::to_value(&updated.event).unwrap()["title"],
        serde_json::Value::Null
    );
    gw.post(&format!("/v1/sessions/{id}"), &t, json!({ "vault_ids": ["x"] }))
        .await
        .error(400, "invalid_request_error");

    // Lists: newest first by default, filters, both page directions.
    let ids = |v: &serde_json::Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let all = gw.get("/v1/sessions", &t).await.ok();
    assert_eq!(
        ids(&all),
        vec![
            latest["id"].as_str().unwrap().to_owned(),
            pinned["id"].as_str().unwrap().to_owned(),
            id.clone()
        ]
    );
    let asc = gw.get("/v1/sessions?order=asc", &t).await.ok();
    assert_eq!(ids(&asc)[0], id);
    let v1 = gw
        .get(&format!("/v1/sessions?agent_id={agent_id}&agent_version=1"), &t)
        .await
        .ok();
    assert_eq!(ids(&v1).len(), 2);
    let idle = gw
        .get("/v1/sessions?statuses[]=idle&statuses[]=running", &t)
        .await
        .ok();
    assert_eq!(ids(&idle).len(), 3);
    let running = gw.get("/v1/sessions?statuses%5B%5D=running", &t).await.ok();
    assert!(ids(&running).is_empty());
    gw.get("/v1/sessions?agent_version=1", &t)
        .await
        .error(400, "invalid_request_error");
    gw.get("/v1/sessions?statuses[]=sleeping", &t)
        .await
        .error(400, "invalid_request_error");
    let p1 = gw.get("/v1/sessions?limit=2", &t).await.ok();
    assert_eq!(ids(&p1).len(), 2);
    assert_eq!(p1["prev_page"], serde_json::Value::Null);
    let p2 = gw
        .get(
            &format!("/v1/sessions?limit=2&page={}", p1["next_page"].as_str().unwrap()),
            &t,
        )
        .await
        .ok();
    assert_eq!(ids(&p2), vec![id.clone()]);
    let back = gw
        .get(
            &format!("/v1/sessions?limit=2&page={}", p2["prev_page"].as_str().unwrap()),
            &t,
        )
        .await
        .ok();
    assert_eq!(ids(&back), ids(&p1));

    // Archive hides it from lists.
    let archived = gw
        .post(&format!("/v1/sessions/{id}/archive"), &t, json!(null))
        .await
        .ok();
    assert!(archived["archived_at"].is_string());
    assert_eq!(ids(&gw.get("/v1/sessions", &t).await.ok()).len(), 2);
    assert_eq!(
        ids(&gw.get("/v1/sessions?include_archived=true", &t).await.ok()).len(),
        3
    );

    // Delete emits session.deleted into the log before the object goes.
    let deleted = gw.delete(&format!("/v1/sessions/{id}"), &t).await.ok();
    assert_eq!(deleted, json!({ "id": id, "type": "session_deleted" }));
    let last = log.range(None, 1, Order::Desc).await.unwrap().events;
    assert!(matches!(last[0].event.body, EventBody::SessionDeleted(_)));
    gw.get(&format!("/v1/sessions/{id}"), &t)
        .await
        .error(404, "not_found_error");
    gw.delete(&format!("/v1/sessions/{id}"), &t)
        .await
        .error(404, "not_found_error");
}

#[tokio::test]
async fn session_create_errors() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let agent = gw
        .post("/v1/agents", &t, json!({ "name": "a", "model": "m" }))
        .await
        .ok();
    let env = gw.post("/v1/environments", &t, json!({ "name": "e" })).await.ok();
    let res = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent["id"], "environment_id": "env-missing" }),
        )
        .await;
    res.error(404, "not_found_error");
    assert_eq!(
        res.body["error"]["details"]["error_code"],
        "environment_not_found"
    );
    gw.post(
        "/v1/sessions",
        &t,
        json!({ "agent": "agent-missing", "environment_id": env["id"] }),
    )
    .await
    .error(404, "not_found_error");
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent["id"], "environment_id": env["id"],
            "initial_events": [{ "type": "user.message", "content": [] }] }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("initial_events[0].content"), "{msg}");
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent["id"], "environment_id": env["id"],
            "initial_events": [{ "type": "user.interrupt" }] }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("initial_events[0].type"), "{msg}");
    let msg = gw
        .post("/v1/sessions", &t, json!({ "agent": { "type": "agent_with_overrides", "id": agent["id"] }, "environment_id": env["id"] }))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("agent:"), "{msg}");
    gw.post(
        &format!("/v1/environments/{}/archive", env["id"].as_str().unwrap()),
        &t,
        json!(null),
    )
    .await
    .ok();
    let res = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent["id"], "environment_id": env["id"] }),
        )
        .await;
    res.error(400, "invalid_request_error");
    assert_eq!(
        gw.get("/v1/sessions", &t).await.ok()["data"],
        json!([]),
        "no session was left behind"
    );
}
