use reqwest::Method;
use serde_json::json;

use crate::harness::Gateway;

#[tokio::test]
async fn agents_create_version_update_retrieve_list_archive() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;

    let agent = gw
        .post(
            "/v1/agents",
            &t,
            json!({ "name": "coder", "model": "claude-sonnet-4-5", "system": "v1" }),
        )
        .await
        .ok();
    let id = agent["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("agent-"), "{id}");
    assert_eq!(agent["version"], 1);
    assert_eq!(
        agent["model"],
        json!({ "id": "claude-sonnet-4-5", "effort": { "type": "high" }, "inference_geo": null, "speed": "standard",
        "provider": { "type": "anthropic", "base_url": null, "api_key_secret_ref": null, "script_ref": null, "max_tokens": null } })
    );
    assert_eq!(agent["execution_identity"], json!({ "type": "service_account" }));

    // The object is a real custom resource, visible to kubectl.
    let api: kube::Api<corral_api::Agent> = kube::Api::namespaced(gw.kube.clone(), &t.ns);
    let cr = api.get(&id).await.unwrap();
    assert_eq!(cr.spec.system.as_deref(), Some("v1"));
    let managers: Vec<_> = cr
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"corral-gateway".to_owned()), "{managers:?}");

    // Updating the spec makes version 2 at once; an unchanged update keeps it.
    let v2 = gw
        .post(
            &format!("/v1/agents/{id}"),
            &t,
            json!({ "system": "v2", "version": 1 }),
        )
        .await
        .ok();
    assert_eq!(
        (v2["version"].clone(), v2["system"].clone()),
        (json!(2), json!("v2"))
    );
    let same = gw
        .post(&format!("/v1/agents/{id}"), &t, json!({ "system": "v2" }))
        .await
        .ok();
    assert_eq!(same["version"], 2);
    let meta = gw
        .post(
            &format!("/v1/agents/{id}"),
            &t,
            json!({ "metadata": { "team": "x" } }),
        )
        .await
        .ok();
    assert_eq!(
        (meta["version"].clone(), meta["metadata"].clone()),
        (json!(3), json!({ "team": "x" }))
    );

    // A stale version is a 409 that the SDK must not retry.
    let stale = gw
        .post(
            &format!("/v1/agents/{id}"),
            &t,
            json!({ "system": "v9", "version": 1 }),
        )
        .await;
    let msg = stale.error(409, "conflict_error");
    assert!(msg.contains("version"), "{msg}");
    assert_eq!(stale.headers["x-should-retry"], "false");

    // Old versions stay readable.
    let v1 = gw.get(&format!("/v1/agents/{id}?version=1"), &t).await.ok();
    assert_eq!(
        (v1["version"].clone(), v1["system"].clone()),
        (json!(1), json!("v1"))
    );
    let latest = gw.get(&format!("/v1/agents/{id}"), &t).await.ok();
    assert_eq!(latest["version"], 3);
    gw.get(&format!("/v1/agents/{id}?version=9"), &t)
        .await
        .error(404, "not_found_error");
    gw.get(&format!("/v1/agents/{id}?version=zero"), &t)
        .await
        .error(400, "invalid_request_error");
    let versions = gw.get(&format!("/v1/agents/{id}/versions"), &t).await.ok();
    let numbers: Vec<_> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].clone())
        .collect();
    assert_eq!(numbers, vec![json!(3), json!(2), json!(1)]);
    let page = gw
        .get(&format!("/v1/agents/{id}/versions?limit=2"), &t)
        .await
        .ok();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let rest = gw
        .get(
            &format!(
                "/v1/agents/{id}/versions?limit=2&page={}",
                page["next_page"].as_str().unwrap()
            ),
            &t,
        )
        .await
        .ok();
    assert_eq!(rest["data"][0]["version"], 1);
    assert_eq!(rest["next_page"], serde_json::Value::Null);

    // Lists page and hide archived agents.
    let second = gw
        .post("/v1/agents", &t, json!({ "name": "second", "model": "m" }))
        .await
        .ok();
    let first_page = gw.get("/v1/agents?limit=1", &t).await.ok();
    assert_eq!(first_page["data"][0]["id"], second["id"], "newest first");
    let next = first_page["next_page"].as_str().unwrap();
    let second_page = gw.get(&format!("/v1/agents?limit=1&page={next}"), &t).await.ok();
    assert_eq!(second_page["data"][0]["id"], json!(id));
    assert_eq!(second_page["next_page"], serde_json::Value::Null);
    let archived = gw
        .post(&format!("/v1/agents/{id}/archive"), &t, json!(null))
        .await
        .ok();
    assert!(archived["archived_at"].is_string());
    let ids = |v: &serde_json::Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&gw.get("/v1/agents", &t).await.ok()),
        vec![second["id"].clone()]
    );
    assert_eq!(
        ids(&gw.get("/v1/agents?include_archived=true", &t).await.ok()).len(),
        2
    );
    let future = gw
        .get("/v1/agents?created_at[gte]=2999-01-01T00:00:00Z", &t)
        .await
        .ok();
    assert!(ids(&future).is_empty());
    gw.get("/v1/agents?limit=0", &t)
        .await
        .error(400, "invalid_request_error");
    gw.get("/v1/agents?include_archived=maybe", &t)
        .await
        .error(400, "invalid_request_error");
}

#[tokio::test]
async fn agent_errors_name_the_field_and_never_500() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let msg = gw
        .post("/v1/agents", &t, json!({ "name": "a", "model": "m", "tools": [{ "type": "agent_toolset_20260401", "configs": [{ "name": "rm" }] }] }))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("tools[0].configs[0].name:"), "{msg}");
    let msg = gw
        .post("/v1/agents", &t, json!({ "model": "m" }))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.contains("name"), "{msg}");
    let msg = gw
        .post(
            "/v1/agents",
            &t,
            json!({ "name": "a", "model": "m", "metadata": { "k": "v".repeat(600) } }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("metadata:"), "{msg}");
    // Bad JSON is a 400.
    let res = gw
        .http
        .post(format!("{}/v1/agents", gw.url))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let msg = Gateway::read(res).await.error(400, "invalid_request_error");
    assert!(msg.contains("invalid JSON"), "{msg}");
    gw.call(Method::POST, "/v1/agents", Some(&t), Some(json!([1, 2])))
        .await
        .error(400, "invalid_request_error");
    // Unknown ids, including ones that cannot be Kubernetes names.
    gw.get("/v1/agents/agent-nope", &t)
        .await
        .error(404, "not_found_error");
    gw.get("/v1/agents/Not_A_Name", &t)
        .await
        .error(404, "not_found_error");
    gw.post("/v1/agents/agent-nope", &t, json!({ "system": "x" }))
        .await
        .error(404, "not_found_error");
    gw.post("/v1/agents/agent-nope/archive", &t, json!(null))
        .await
        .error(404, "not_found_error");
    gw.get("/v1/agents/agent-nope/versions", &t)
        .await
        .error(404, "not_found_error");
    let created = gw
        .post("/v1/agents", &t, json!({ "name": "a", "model": "m" }))
        .await
        .ok();
    let id = created["id"].as_str().unwrap();
    let msg = gw
        .post(&format!("/v1/agents/{id}"), &t, json!({ "name": null }))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("name:"), "{msg}");
}

#[tokio::test]
async fn kubectl_created_agents_are_visible_and_versioned() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let api: kube::Api<corral_api::Agent> = kube::Api::namespaced(gw.kube.clone(), &t.ns);
    let agent: corral_api::Agent = serde_json::from_value(json!({
        "apiVersion": "corral.dev/v1alpha1", "kind": "Agent",
        "metadata": { "name": "hand-made" },
        "spec": { "model": { "id": "m" }, "system": "hi" }
    }))
    .unwrap();
    api.create(&Default::default(), &agent).await.unwrap();
    let got = gw.get("/v1/agents/hand-made", &t).await.ok();
    assert_eq!(
        (got["id"].clone(), got["name"].clone(), got["version"].clone()),
        (json!("hand-made"), json!("hand-made"), json!(1))
    );
    let upd = gw
        .post(
            "/v1/agents/hand-made",
            &t,
            json!({ "description": "now with a description" }),
        )
        .await
        .ok();
    assert_eq!(upd["version"], 2);
    assert_eq!(
        api.get("hand-made").await.unwrap().spec.description.as_deref(),
        Some("now with a description")
    );
}
