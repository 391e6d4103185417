//! Vaults and credentials: stored as Secrets by the documented contract, secrets write-only, tenant-scoped, and
//! referenced by sessions.

use corral_api::vault::{AUTH_KEY, CREDENTIAL_SECRET_TYPE, CREDENTIAL_TYPE, MANAGED_BY, OBJECT, VAULT};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};

use crate::harness::Gateway;

const TOKEN: &str = "ghp-very-secret-token-value";

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn vaults_and_credentials_round_trip_as_secrets_without_showing_secrets() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let other = gw.tenant().await;
    let secrets: Api<Secret> = Api::namespaced(gw.kube.clone(), &t.ns);

    let vault = gw
        .post(
            "/v1/vaults",
            &t,
            json!({ "display_name": "Production", "metadata": { "team": "infra" } }),
        )
        .await
        .ok();
    let vid = vault["id"].as_str().unwrap().to_owned();
    assert!(vid.starts_with("vlt-"), "{vid}");
    assert_eq!(vault["type"], "vault");
    assert_eq!(vault["display_name"], "Production");
    assert_eq!(vault["metadata"], json!({ "team": "infra" }));
    assert_eq!(vault["archived_at"], Value::Null);
    let stored = secrets.get(&vid).await.unwrap();
    let labels = stored.metadata.labels.clone().unwrap();
    assert_eq!(labels[MANAGED_BY], "corral");
    assert_eq!(labels[OBJECT], "vault");
    assert_eq!(stored.data, None);

    let cred = gw
        .post(
            &format!("/v1/vaults/{vid}/credentials"),
            &t,
            json!({ "display_name": "GitHub MCP", "auth": {
                "type": "static_bearer", "mcp_server_url": "https://mcp.github.example/mcp", "token": TOKEN } }),
        )
        .await
        .ok();
    let cid = cred["id"].as_str().unwrap().to_owned();
    assert!(cid.starts_with("vcrd-"), "{cid}");
    assert_eq!(cred["type"], "vault_credential");
    assert_eq!(cred["vault_id"], vid.as_str());
    assert_eq!(
        cred["auth"],
        json!({ "type": "static_bearer", "mcp_server_url": "https://mcp.github.example/mcp" })
    );
    // The Secret holds the whole auth, with the token, in the documented shape.
    let stored = secrets.get(&cid).await.unwrap();
    assert_eq!(stored.type_.as_deref(), Some(CREDENTIAL_SECRET_TYPE));
    let labels = stored.metadata.labels.clone().unwrap();
    assert_eq!(
        (
            labels[OBJECT].as_str(),
            labels[VAULT].as_str(),
            labels[CREDENTIAL_TYPE].as_str()
        ),
        ("vault-credential", vid.as_str(), "static_bearer")
    );
    let owner = &stored.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Secret", vid.as_str())
    );
    let auth: Value = serde_json::from_slice(&stored.data.unwrap()[AUTH_KEY].0).unwrap();
    assert_eq!(auth["token"], TOKEN);

    // Rotating the token keeps the URL; the URL and the type cannot change.
    let path = format!("/v1/vaults/{vid}/credentials/{cid}");
    let updated = gw
        .post(
            &path,
            &t,
            json!({ "auth": { "type": "static_bearer", "token": "rotated-token" }, "metadata": { "k": "v" } }),
        )
        .await
        .ok();
    assert_eq!(updated["display_name"], "GitHub MCP");
    assert_eq!(updated["metadata"], json!({ "k": "v" }));
    let auth: Value =
        serde_json::from_slice(&secrets.get(&cid).await.unwrap().data.unwrap()[AUTH_KEY].0).unwrap();
    assert_eq!(auth["token"], "rotated-token");
    let msg = gw
        .post(
            &path,
            &t,
            json!({ "auth": { "type": "static_bearer", "mcp_server_url": "https://elsewhere/mcp" } }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("auth.mcp_server_url"), "{msg}");
    let msg = gw
        .post(&path, &t, json!({ "auth": { "type": "mcp_oauth" } }))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("auth.type"), "{msg}");

    // No response ever holds a secret.
    let retrieved = gw.get(&path, &t).await.ok();
    let listed = gw.get(&format!("/v1/vaults/{vid}/credentials"), &t).await.ok();
    for body in [&cred, &updated, &retrieved, &listed] {
        let text = body.to_string();
        assert!(!text.contains(TOKEN) && !text.contains("rotated-token"), "{text}");
    }
    assert_eq!(ids(&listed), vec![cid.clone()]);

    // Bad input gets the error envelope naming the field.
    for (body, field) in [
        (json!({}), "body: missing field `auth`"),
        (
            json!({ "auth": { "type": "static_bearer", "mcp_server_url": "not a url", "token": "x" } }),
            "auth.mcp_server_url",
        ),
        (
            json!({ "auth": { "type": "static_bearer", "mcp_server_url": "https://x/mcp" } }),
            "auth",
        ),
        (json!({ "auth": { "type": "magic" } }), "auth"),
        (
            json!({ "auth": { "type": "environment_variable", "secret_name": "GH_TOKEN", "secret_value": "v",
                           "networking": { "type": "limited", "allowed_hosts": [] } } }),
            "auth.networking.allowed_hosts",
        ),
    ] {
        let msg = gw
            .post(&format!("/v1/vaults/{vid}/credentials"), &t, body)
            .await
            .error(400, "invalid_request_error");
        assert!(msg.starts_with(field), "{msg}");
        assert!(!msg.contains(TOKEN));
    }
    gw.post("/v1/vaults", &t, json!({ "display_name": "" }))
        .await
        .error(400, "invalid_request_error");
    gw.post("/v1/vaults", &t, json!({ "display_name": "x".repeat(256) }))
        .await
        .error(400, "invalid_request_error");

    // Another tenant sees none of it; Secrets that are not vaults are not vaults.
    gw.get(&format!("/v1/vaults/{vid}"), &other)
        .await
        .error(404, "not_found_error");
    gw.get(&path, &other).await.error(404, "not_found_error");
    gw.delete(&format!("/v1/vaults/{vid}"), &other)
        .await
        .error(404, "not_found_error");
    assert_eq!(
        ids(&gw.get("/v1/vaults", &other).await.ok()),
        Vec::<String>::new()
    );
    let key_secret = secrets
        .list(&kube::api::ListParams::default().labels("corral.dev/api-key=true"))
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    gw.get(&format!("/v1/vaults/{key_secret}"), &t)
        .await
        .error(404, "not_found_error");
    gw.delete(&format!("/v1/vaults/{key_secret}"), &t)
        .await
        .error(404, "not_found_error");
    gw.get(&format!("/v1/vaults/{vid}/credentials/{key_secret}"), &t)
        .await
        .error(404, "not_found_error");

    // Update, archive, list with include_archived, pagination.
    let renamed = gw
        .post(
            &format!("/v1/vaults/{vid}"),
            &t,
            json!({ "display_name": "Prod", "metadata": { "team": null } }),
        )
        .await
        .ok();
    assert_eq!(renamed["display_name"], "Prod");
    assert_eq!(renamed["metadata"], json!({}));
    let mut more = Vec::new();
    for i in 0..3 {
        let v = gw
            .post("/v1/vaults", &t, json!({ "display_name": format!("v{i}") }))
            .await
            .ok();
        more.push(v["id"].as_str().unwrap().to_owned());
    }
    let archived = gw
        .post(&format!("/v1/vaults/{}/archive", more[0]), &t, json!(null))
        .await
        .ok();
    assert!(archived["archived_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ids(&gw.get("/v1/vaults", &t).await.ok()).len(), 3);
    let mut seen = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let url = match &page {
            Some(p) => format!("/v1/vaults?include_archived=true&limit=2&page={p}"),
            None => "/v1/vaults?include_archived=true&limit=2".to_owned(),
        };
        let body = gw.get(&url, &t).await.ok();
        seen.extend(ids(&body));
        match body["next_page"].as_str() {
            Some(p) => page = Some(p.to_owned()),
            None => break,
        }
    }
    seen.sort();
    let mut all = more.clone();
    all.push(vid.clone());
    all.sort();
    assert_eq!(seen, all);
    let archived_cred = gw.post(&format!("{path}/archive"), &t, json!(null)).await.ok();
    assert!(archived_cred["archived_at"].is_string());
    assert_eq!(
        ids(&gw.get(&format!("/v1/vaults/{vid}/credentials"), &t).await.ok()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&gw
            .get(&format!("/v1/vaults/{vid}/credentials?include_archived=true"), &t)
            .await
            .ok()),
        vec![cid.clone()]
    );

    // Deleting a vault deletes its credentials.
    let deleted = gw.delete(&format!("/v1/vaults/{vid}"), &t).await.ok();
    assert_eq!(deleted, json!({ "id": vid, "type": "vault_deleted" }));
    assert!(secrets.get_opt(&cid).await.unwrap().is_none());
    gw.get(&format!("/v1/vaults/{vid}"), &t)
        .await
        .error(404, "not_found_error");
    let c2 = gw
        .post(
            &format!("/v1/vaults/{}/credentials", more[1]),
            &t,
            json!({ "auth": { "type": "static_bearer", "mcp_server_url": "https://m/mcp", "token": "t" } }),
        )
        .await
        .ok();
    let c2 = c2["id"].as_str().unwrap();
    assert_eq!(
        gw.delete(&format!("/v1/vaults/{}/credentials/{c2}", more[1]), &t)
            .await
            .ok(),
        json!({ "id": c2, "type": "vault_credential_deleted" })
    );
}

#[tokio::test]
async fn sessions_reference_existing_vaults_of_their_tenant() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let other = gw.tenant().await;
    let (agent, env, _) = gw.session(&t).await;
    let vault = gw
        .post("/v1/vaults", &t, json!({ "display_name": "v" }))
        .await
        .ok();
    let vid = vault["id"].as_str().unwrap();
    let foreign = gw
        .post("/v1/vaults", &other, json!({ "display_name": "theirs" }))
        .await
        .ok();
    let foreign = foreign["id"].as_str().unwrap();

    let session = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent, "environment_id": env, "vault_ids": [vid] }),
        )
        .await
        .ok();
    assert_eq!(session["vault_ids"], json!([vid]));
    let sessions: Api<corral_api::Session> = Api::namespaced(gw.kube.clone(), &t.ns);
    let stored = sessions.get(session["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(stored.spec.vault_refs[0].name, vid);

    for missing in ["vlt-missing", foreign, "Not_A_Name"] {
        let msg = gw
            .post(
                "/v1/sessions",
                &t,
                json!({ "agent": agent, "environment_id": env, "vault_ids": [vid, missing] }),
            )
            .await
            .error(404, "not_found_error");
        assert!(msg.starts_with("vault_ids[1]: vault"), "{msg}");
        assert!(msg.contains(missing), "{msg}");
    }
    gw.post(&format!("/v1/vaults/{vid}/archive"), &t, json!(null))
        .await
        .ok();
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent, "environment_id": env, "vault_ids": [vid] }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(
        msg.starts_with("vault_ids[0]") && msg.contains("archived"),
        "{msg}"
    );
}
