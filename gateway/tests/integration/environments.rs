use serde_json::json;

use crate::harness::Gateway;

#[tokio::test]
async fn environments_create_update_list_archive_delete() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let env = gw
        .post(
            "/v1/environments",
            &t,
            json!({ "name": "py", "config": { "type": "cloud", "packages": { "pip": ["requests"] } },
            "sandbox": { "image": "python:3.12" } }),
        )
        .await
        .ok();
    let id = env["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("env-"), "{id}");
    assert_eq!(env["type"], "environment");
    assert_eq!(env["config"]["networking"], json!({ "type": "unrestricted" }));
    assert_eq!(env["config"]["packages"]["pip"], json!(["requests"]));
    assert_eq!(env["config"]["packages"]["apt"], json!([]));
    assert_eq!(env["sandbox"]["image"], "python:3.12");
    assert_eq!(gw.get(&format!("/v1/environments/{id}"), &t).await.ok(), env);

    let upd = gw
        .post(&format!("/v1/environments/{id}"), &t, json!({ "description": "d", "metadata": { "a": "1" },
            "config": { "networking": { "type": "limited", "allowed_hosts": ["pypi.org"], "allow_package_managers": true } } }))
        .await
        .ok();
    assert_eq!(upd["description"], "d");
    assert_eq!(
        upd["config"]["packages"]["pip"],
        json!(["requests"]),
        "omitted sub-fields keep their values"
    );
    assert_eq!(
        upd["config"]["networking"],
        json!({ "type": "limited", "allowed_hosts": ["pypi.org"], "allow_mcp_servers": false, "allow_package_managers": true })
    );
    let msg = gw
        .post(
            &format!("/v1/environments/{id}"),
            &t,
            json!({ "config": { "networking": { "type": "limited", "allowed_hosts": ["no spaces"] } } }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("config.networking.allowed_hosts[0]:"), "{msg}");
    let res = gw
        .post(
            &format!("/v1/environments/{id}"),
            &t,
            json!({ "config": { "type": "self_hosted" } }),
        )
        .await;
    res.error(400, "invalid_request_error");
    assert_eq!(
        res.body["error"]["details"]["error_code"],
        "invalid_config_type_change"
    );

    let other = gw
        .post("/v1/environments", &t, json!({ "name": "other" }))
        .await
        .ok();
    let page = gw.get("/v1/environments?limit=1", &t).await.ok();
    assert_eq!(page["data"][0]["id"], other["id"]);
    let rest = gw
        .get(
            &format!(
                "/v1/environments?limit=1&page={}",
                page["next_page"].as_str().unwrap()
            ),
            &t,
        )
        .await
        .ok();
    assert_eq!(rest["data"][0]["id"], json!(id));

    let archived = gw
        .post(&format!("/v1/environments/{id}/archive"), &t, json!(null))
        .await
        .ok();
    assert!(archived["archived_at"].is_string());
    let again = gw
        .post(&format!("/v1/environments/{id}/archive"), &t, json!(null))
        .await
        .ok();
    assert_eq!(
        again["archived_at"], archived["archived_at"],
        "archiving twice keeps the first time"
    );
    let res = gw
        .post(&format!("/v1/environments/{id}"), &t, json!({ "name": "x" }))
        .await;
    res.error(400, "invalid_request_error");
    assert_eq!(res.body["error"]["details"]["error_code"], "environment_archived");
    assert_eq!(
        gw.get("/v1/environments", &t).await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        gw.get("/v1/environments?include_archived=true", &t).await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let deleted = gw.delete(&format!("/v1/environments/{id}"), &t).await.ok();
    assert_eq!(deleted, json!({ "id": id, "type": "environment_deleted" }));
    let res = gw.get(&format!("/v1/environments/{id}"), &t).await;
    res.error(404, "not_found_error");
    assert_eq!(
        res.body["error"]["details"]["error_code"],
        "environment_not_found"
    );
    gw.delete(&format!("/v1/environments/{id}"), &t)
        .await
        .error(404, "not_found_error");
    let msg = gw
        .post("/v1/environments", &t, json!({ "name": 5 }))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("name:"), "{msg}");
}
