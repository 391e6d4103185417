//! `/v1/memory_stores` against a real API server and Redis: stores, memories and their versions; another tenant's
//! 404; the SDK's limits as 400s naming the field; preconditions and taken paths as 409s that are never retried;
//! listing by prefix and depth; redaction.

use corral_gateway::keys::{hash_key, key_id};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{Gateway, Tenant};

fn sha(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn new_store(gw: &Gateway, t: &Tenant, name: &str) -> String {
    let store = gw
        .post("/v1/memory_stores", t, json!({ "name": name }))
        .await
        .ok();
    store["id"].as_str().unwrap().to_owned()
}

async fn write(gw: &Gateway, t: &Tenant, store: &str, path: &str, content: &str) -> Value {
    gw.post(
        &format!("/v1/memory_stores/{store}/memories"),
        t,
        json!({ "path": path, "content": content }),
    )
    .await
    .ok()
}

#[tokio::test]
async fn a_store_is_its_tenants_alone_and_keeps_its_fields() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let stranger = gw.tenant().await;

    let store = gw
        .post(
            "/v1/memory_stores",
            &t,
            json!({ "name": "Team notes", "description": "What we learned", "metadata": { "owner": "ana" } }),
        )
        .await
        .ok();
    let id = store["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("memstore_"), "{id}");
    assert_eq!(store["type"], "memory_store");
    assert_eq!(store["description"], "What we learned");
    assert_eq!(store["metadata"], json!({ "owner": "ana" }));
    assert_eq!(store["archived_at"], Value::Null);
    let memory = write(&gw, &t, &id, "/a.md", "secret plans").await;
    let mem = memory["id"].as_str().unwrap();

    // Another namespace's key finds nothing, whatever it asks.
    for path in [
        format!("/v1/memory_stores/{id}"),
        format!("/v1/memory_stores/{id}/memories"),
        format!("/v1/memory_stores/{id}/memories/{mem}"),
        format!("/v1/memory_stores/{id}/memory_versions"),
    ] {
        gw.get(&path, &stranger).await.error(404, "not_found_error");
    }
    gw.post(
        &format!("/v1/memory_stores/{id}/memories"),
        &stranger,
        json!({ "path": "/b.md", "content": "x" }),
    )
    .await
    .error(404, "not_found_error");
    gw.delete(&format!("/v1/memory_stores/{id}"), &stranger)
        .await
        .error(404, "not_found_error");
    let theirs = gw.get("/v1/memory_stores", &stranger).await.ok();
    assert_eq!(theirs["data"], json!([]));

    // Update patches metadata and keeps what it is not given.
    let updated = gw
        .post(
            &format!("/v1/memory_stores/{id}"),
            &t,
            json!({ "name": "Notes", "metadata": { "owner": null, "team": "core" } }),
        )
        .await
        .ok();
    assert_eq!(updated["name"], "Notes");
    assert_eq!(updated["description"], "What we learned");
    assert_eq!(updated["metadata"], json!({ "team": "core" }));

    // Archived: listed only on request, read-only, still deletable.
    let other = new_store(&gw, &t, "Other").await;
    let archived = gw
        .post(&format!("/v1/memory_stores/{id}/archive"), &t, json!({}))
        .await
        .ok();
    assert!(archived["archived_at"].is_string());
    let listed = gw.get("/v1/memory_stores", &t).await.ok();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![other.as_str()]);
    let all = gw
        .get("/v1/memory_stores?include_archived=true&limit=1", &t)
        .await
        .ok();
    assert_eq!(all["data"][0]["id"], other.as_str(), "newest first");
    let later = gw
        .get(
            "/v1/memory_stores?include_archived=true&created_at%5Bgte%5D=2999-01-01T00:00:00Z",
            &t,
        )
        .await
        .ok();
    assert_eq!(later["data"], json!([]));
    let earlier = gw
        .get(
            "/v1/memory_stores?include_archived=true&created_at%5Blte%5D=2999-01-01T00:00:00Z",
            &t,
        )
        .await
        .ok();
    assert_eq!(earlier["data"].as_array().unwrap().len(), 2, "{earlier}");
    let next = all["next_page"].as_str().unwrap();
    let rest = gw
        .get(
            &format!("/v1/memory_stores?include_archived=true&limit=1&page={next}"),
            &t,
        )
        .await
        .ok();
    assert_eq!(rest["data"][0]["id"], id.as_str());
    let msg = gw
        .post(
            &format!("/v1/memory_stores/{id}/memories"),
            &t,
            json!({ "path": "/c.md", "content": "x" }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.contains("archived"), "{msg}");
    gw.post(&format!("/v1/memory_stores/{id}"), &t, json!({ "name": "x" }))
        .await
        .error(400, "invalid_request_error");
    let read = gw
        .get(&format!("/v1/memory_stores/{id}/memories/{mem}"), &t)
        .await
        .ok();
    assert_eq!(read["content"], "secret plans");

    let deleted = gw.delete(&format!("/v1/memory_stores/{id}"), &t).await.ok();
    assert_eq!(deleted, json!({ "id": id, "type": "memory_store_deleted" }));
    gw.get(&format!("/v1/memory_stores/{id}"), &t)
        .await
        .error(404, "not_found_error");
    gw.get(&format!("/v1/memory_stores/{id}/memories/{mem}"), &t)
        .await
        .error(404, "not_found_error");
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_sdks_limits_are_400s_naming_the_field() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let store = new_store(&gw, &t, "limits").await;
    let memories = format!("/v1/memory_stores/{store}/memories");

    let cases = [
        (
            json!({ "path": "/a.md", "content": "x".repeat(102_401) }),
            "content:",
        ),
        (
            json!({ "path": format!("/{}", "x".repeat(1024)), "content": "" }),
            "path:",
        ),
        (json!({ "path": "/a".repeat(21), "content": "" }), "path:"),
        (json!({ "path": "a.md", "content": "" }), "path:"),
        (json!({ "path": "/a/../b", "content": "" }), "path:"),
        (json!({ "path": "/a\u{7}b", "content": "" }), "path:"),
        (json!({ "path": "/e\u{301}", "content": "" }), "path:"),
        (json!({ "path": "/a.md" }), "content:"),
        (json!({ "path": "/a.md", "content": null }), "content:"),
        (json!({ "path": "/a.md", "content": "", "mode": "x" }), "mode:"),
    ];
    for (body, field) in cases {
        let msg = gw
            .post(&memories, &t, body.clone())
            .await
            .error(400, "invalid_request_error");
        assert!(msg.starts_with(field), "{body}: {msg}");
    }
    // At the limits: accepted.
    write(&gw, &t, &store, "/big.md", &"x".repeat(102_400)).await;
    write(&gw, &t, &store, &"/a".repeat(20), "").await;

    let pairs: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let reply = gw
        .post("/v1/memory_stores", &t, json!({ "name": "m", "metadata": pairs }))
        .await;
    assert!(reply.error(400, "invalid_request_error").starts_with("metadata"));
    assert_eq!(reply.body["error"]["details"]["error_code"], "invalid_metadata");
    for (body, field) in [
        (json!({ "name": "" }), "name:"),
        (json!({ "name": "x".repeat(256) }), "name:"),
        (json!({ "name": "a\nb" }), "name:"),
        (
            json!({ "name": "n", "description": "d".repeat(1025) }),
            "description:",
        ),
        (json!({ "name": "n", "instructions": "i" }), "instructions:"),
    ] {
        let msg = gw
            .post("/v1/memory_stores", &t, body.clone())
            .await
            .error(400, "invalid_request_error");
        assert!(msg.starts_with(field), "{body}: {msg}");
    }
    let msg = gw
        .get(&format!("{memories}?path_prefix=/notes"), &t)
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("path_prefix:"), "{msg}");
    let msg = gw
        .get(&format!("{memories}?colour=red"), &t)
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("colour:"), "{msg}");
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_precondition_or_a_taken_path_is_a_409_never_retried() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let store = new_store(&gw, &t, "concurrency").await;
    let memory = write(&gw, &t, &store, "/notes.md", "v1").await;
    let id = memory["id"].as_str().unwrap().to_owned();
    assert_eq!(memory["content_sha256"], sha("v1"));
    assert_eq!(memory["content"], Value::Null, "create answers view=basic");
    let path = format!("/v1/memory_stores/{store}/memories/{id}");

    // Writer A read v1 and updates; writer B, who also read v1, loses.
    let a = gw
        .post(
            &format!("{path}?view=full"),
            &t,
            json!({ "content": "from A", "precondition": { "type": "content_sha256", "content_sha256": sha("v1") } }),
        )
        .await
        .ok();
    assert_eq!(a["content"], "from A");
    let b = gw
        .post(
            &path,
            &t,
            json!({ "content": "from B", "precondition": { "type": "content_sha256", "content_sha256": sha("v1") } }),
        )
        .await;
    b.error(409, "memory_precondition_failed_error");
    assert_eq!(b.headers["x-should-retry"], "false");
    assert_eq!(gw.get(&path, &t).await.ok()["content"], "from A");

    // Delete with a stale hash is refused too, and deletes nothing.
    let stale = gw
        .delete(&format!("{path}?expected_content_sha256={}", sha("v1")), &t)
        .await;
    stale.error(409, "memory_precondition_failed_error");
    assert_eq!(stale.headers["x-should-retry"], "false");
    let msg = gw
        .delete(&format!("{path}?expected_content_sha256=ABC"), &t)
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("expected_content_sha256:"), "{msg}");

    // A second memory at the same path, or a rename onto it: a path conflict.
    write(&gw, &t, &store, "/other.md", "o").await;
    let taken = gw
        .post(
            &format!("/v1/memory_stores/{store}/memories"),
            &t,
            json!({ "path": "/notes.md", "content": "dup" }),
        )
        .await;
    taken.error(409, "memory_path_conflict_error");
    assert_eq!(taken.headers["x-should-retry"], "false");
    gw.post(&path, &t, json!({ "path": "/other.md" }))
        .await
        .error(409, "memory_path_conflict_error");

    // A rename keeps the id and content; the old path is free again.
    let moved = gw.post(&path, &t, json!({ "path": "/moved.md" })).await.ok();
    assert_eq!(moved["id"], id.as_str());
    assert_eq!(moved["path"], "/moved.md");
    assert_eq!(moved["content_sha256"], sha("from A"));
    write(&gw, &t, &store, "/notes.md", "new").await;

    let gone = gw
        .delete(&format!("{path}?expected_content_sha256={}", sha("from A")), &t)
        .await
        .ok();
    assert_eq!(gone, json!({ "id": id, "type": "memory_deleted" }));
    gw.get(&path, &t).await.error(404, "not_found_error");
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_write_is_a_version_and_redaction_keeps_the_record() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let store = new_store(&gw, &t, "history").await;
    let memory = write(&gw, &t, &store, "/notes.md", "password=hunter2").await;
    let id = memory["id"].as_str().unwrap().to_owned();
    let first = memory["memory_version_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/memory_stores/{store}/memories/{id}");
    let updated = gw
        .post(&path, &t, json!({ "content": "password=<rotated>" }))
        .await
        .ok();
    let second = updated["memory_version_id"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    // The same content again changes nothing and adds no version.
    let same = gw
        .post(&path, &t, json!({ "content": "password=<rotated>" }))
        .await
        .ok();
    assert_eq!(same["memory_version_id"], second.as_str());

    let versions = format!("/v1/memory_stores/{store}/memory_versions");
    let listed = gw.get(&format!("{versions}?memory_id={id}"), &t).await.ok();
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{listed}");
    assert_eq!(data[0]["id"], second.as_str(), "newest first");
    assert_eq!(data[0]["operation"], "modified");
    assert_eq!(data[1]["operation"], "created");
    assert_eq!(data[1]["content"], Value::Null, "list answers view=basic");
    assert_eq!(data[1]["content_sha256"], sha("password=hunter2"));
    let key = key_id(&hash_key(&t.key));
    assert_eq!(
        data[1]["created_by"],
        json!({ "type": "api_actor", "api_key_id": key })
    );
    let mine = gw
        .get(&format!("{versions}?api_key_id={key}&operation=created"), &t)
        .await
        .ok();
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let nobody = gw.get(&format!("{versions}?session_id=sesn_x"), &t).await.ok();
    assert_eq!(nobody["data"], json!([]));
    let robots = gw
        .get(&format!("{versions}?service_account_id=svac_x"), &t)
        .await
        .ok();
    assert_eq!(
        robots["data"],
        json!([]),
        "Corral writes no service-account versions"
    );
    let later = gw
        .get(
            &format!("{versions}?created_at%5Bgte%5D=2999-01-01T00:00:00Z"),
            &t,
        )
        .await
        .ok();
    assert_eq!(later["data"], json!([]));
    let earlier = gw
        .get(
            &format!("{versions}?memory_id={id}&created_at%5Blte%5D=2999-01-01T00:00:00Z"),
            &t,
        )
        .await
        .ok();
    assert_eq!(earlier["data"].as_array().unwrap().len(), 2, "{earlier}");
    let full = gw.get(&format!("{versions}/{first}"), &t).await.ok();
    assert_eq!(full["content"], "password=hunter2", "retrieve answers view=full");

    // The version holding the memory's content now cannot be redacted; an older one can.
    let msg = gw
        .post(&format!("{versions}/{second}/redact"), &t, json!({}))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.contains("current content"), "{msg}");
    let redacted = gw
        .post(&format!("{versions}/{first}/redact"), &t, json!({}))
        .await
        .ok();
    for field in ["content", "path", "content_sha256", "content_size_bytes"] {
        assert_eq!(redacted[field], Value::Null, "{field}: {redacted}");
    }
    assert!(redacted["redacted_at"].is_string());
    assert_eq!(redacted["redacted_by"]["api_key_id"], key.as_str());
    assert_eq!(redacted["created_by"]["api_key_id"], key.as_str());
    assert_eq!(redacted["operation"], "created");
    let again = gw.get(&format!("{versions}/{first}"), &t).await.ok();
    assert_eq!(again["content"], Value::Null);
    assert_eq!(again["memory_id"], id.as_str());

    // Deleting the memory adds a `deleted` version; the history stays.
    gw.delete(&path, &t).await.ok();
    let after = gw.get(&format!("{versions}?memory_id={id}"), &t).await.ok();
    let ops: Vec<&str> = after["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, vec!["deleted", "modified", "created"]);
    assert_eq!(after["data"][0]["path"], "/notes.md");
    assert_eq!(after["data"][0]["content_sha256"], Value::Null);
    // Now the last content version holds no live memory's content: it can be redacted.
    gw.post(&format!("{versions}/{second}/redact"), &t, json!({}))
        .await
        .ok();
    gw.get(&format!("{versions}/memver_nope"), &t)
        .await
        .error(404, "not_found_error");
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_list_follows_path_order_prefixes_and_depth() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let store = new_store(&gw, &t, "tree").await;
    for p in [
        "/top.md",
        "/notes/todo.md",
        "/notes/deep/a.md",
        "/notes/deep/b.md",
        "/notes-archive/old.md",
    ] {
        write(&gw, &t, &store, p, p).await;
    }
    let memories = format!("/v1/memory_stores/{store}/memories");
    let paths = |v: &Value| -> Vec<(String, String)> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["type"].as_str().unwrap().to_owned(),
                    i["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let mem = |p: &str| ("memory".to_owned(), p.to_owned());
    let pre = |p: &str| ("memory_prefix".to_owned(), p.to_owned());

    let notes = gw.get(&format!("{memories}?path_prefix=/notes/"), &t).await.ok();
    assert_eq!(
        paths(&notes),
        vec![
            mem("/notes/deep/a.md"),
            mem("/notes/deep/b.md"),
            mem("/notes/todo.md")
        ],
        "whole segments only: /notes-archive/ is not below /notes/"
    );
    let top = gw.get(&format!("{memories}?depth=1"), &t).await.ok();
    assert_eq!(
        paths(&top),
        vec![pre("/notes-archive/"), pre("/notes/"), mem("/top.md")]
    );
    let two = gw
        .get(&format!("{memories}?path_prefix=/notes/&depth=1"), &t)
        .await
        .ok();
    assert_eq!(paths(&two), vec![pre("/notes/deep/"), mem("/notes/todo.md")]);

    // Pages of two walk everything once, prefixes counting toward the limit.
    let mut seen = Vec::new();
    let mut url = format!("{memories}?depth=1&limit=2");
    loop {
        let page = gw.get(&url, &t).await.ok();
        seen.extend(paths(&page));
        match page["next_page"].as_str() {
            Some(next) => url = format!("{memories}?depth=1&limit=2&page={next}"),
            None => break,
        }
    }
    assert_eq!(seen, paths(&top));
    let full = gw
        .get(&format!("{memories}?path_prefix=/notes/deep/&view=full"), &t)
        .await
        .ok();
    assert_eq!(full["data"][0]["content"], "/notes/deep/a.md");
    gw.shutdown().await.unwrap();
}
