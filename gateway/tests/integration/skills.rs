//! `/v1/skills` against a real API server, Redis and S3 server: a skill's versions, its archive and its errors; an
//! agent pins its skill; and the internal routes the harness reads a skill through, which no API key and no foreign
//! token opens.

use corral_gateway::{ratelimit::Limiter, state::Settings};
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::{
    harness::{Gateway, Reply, Tenant},
    s3::S3Server,
};

/// The namespace the test's "harnesses" run in.
const SYSTEM: &str = "corral-it-skill-harnesses";

const SKILL_MD: &str = "---\nname: csv-report\ndescription: Turns a CSV into a report.\n---\n# Use\n";

async fn gateway(s3: &S3Server) -> Gateway {
    let settings = Settings {
        files: Some(s3.storage(1 << 20)),
        harness_namespace: Some(SYSTEM.into()),
        ..Settings::default()
    };
    Gateway::start_with_settings(Limiter::new(0, 0), settings).await
}

/// `POST path` with the skill directory `files` (path, content) as `t`.
async fn upload(gw: &Gateway, t: &Tenant, path: &str, files: &[(&str, &str)]) -> Reply {
    let mut form = Form::new();
    for (name, text) in files {
        form = form.part(
            "files[]",
            Part::bytes(text.as_bytes().to_vec()).file_name((*name).to_owned()),
        );
    }
    let res = gw
        .http
        .post(format!("{}{path}", gw.url))
        .bearer_auth(&t.key)
        .multipart(form)
        .send()
        .await
        .expect("request");
    Gateway::read(res).await
}

#[tokio::test]
async fn a_skill_keeps_its_versions_in_order_and_another_tenant_finds_nothing() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3).await;
    let t = gw.tenant().await;
    let stranger = gw.tenant().await;
    let files = [("csv/SKILL.md", SKILL_MD), ("csv/run.sh", "echo hi\n")];

    let skill = upload(&gw, &t, "/v1/skills", &files).await.ok();
    let id = skill["id"].as_str().unwrap().to_owned();
    assert_eq!(skill["display_name"], "csv-report");
    assert_eq!(skill["source"], json!({ "type": "custom" }));
    let v1 = skill["latest_version_id"].as_str().unwrap().to_owned();
    let v2 = upload(&gw, &t, &format!("/v1/skills/{id}/versions"), &files)
        .await
        .ok();
    let v2 = v2["id"].as_str().unwrap().to_owned();
    assert!(v2.parse::<u64>().unwrap() > v1.parse::<u64>().unwrap());
    let listed = gw
        .get(&format!("/v1/skills/{id}/versions?limit=1"), &t)
        .await
        .ok();
    assert_eq!(listed["data"][0]["id"], v2.as_str());
    let next = listed["next_page"].as_str().unwrap();
    let rest = gw
        .get(&format!("/v1/skills/{id}/versions?limit=1&page={next}"), &t)
        .await
        .ok();
    assert_eq!(rest["data"][0]["id"], v1.as_str());
    assert_eq!(rest["next_page"], json!(null));

    let renamed = [("other/SKILL.md", "---\nname: other\ndescription: d\n---\n")];
    let msg = upload(&gw, &t, &format!("/v1/skills/{id}/versions"), &renamed)
        .await
        .error(400, "invalid_request_error");
    assert!(msg.contains("cannot change"), "{msg}");
    let msg = upload(&gw, &t, "/v1/skills", &[("csv/run.sh", "x")])
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("files:") && msg.contains("SKILL.md"), "{msg}");

    for path in [
        format!("/v1/skills/{id}"),
        format!("/v1/skills/{id}/versions"),
        format!("/v1/skills/{id}/versions/latest/content"),
    ] {
        gw.get(&path, &stranger).await.error(404, "not_found_error");
    }
    let msg = gw
        .post(
            "/v1/agents",
            &stranger,
            json!({ "name": "a", "model": "m", "skills": [{ "type": "custom", "skill_id": id }] }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("skills[0].skill_id:"), "{msg}");
    let agent = gw
        .post(
            "/v1/agents",
            &t,
            json!({ "name": "a", "model": "m", "skills": [{ "type": "custom", "skill_id": id, "version": "latest" }] }),
        )
        .await
        .ok();
    assert_eq!(
        agent["skills"][0]["version"],
        v2.as_str(),
        "latest is pinned when the agent is saved"
    );
    // Another skill of the same name would share the first one's directory in the sandbox.
    let twin = upload(&gw, &t, "/v1/skills", &files).await.ok();
    let msg = gw
        .post(
            "/v1/agents",
            &t,
            json!({ "name": "b", "model": "m", "skills": [
                { "type": "custom", "skill_id": id }, { "type": "custom", "skill_id": twin["id"] }
            ] }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(
        msg.starts_with("skills[1].skill_id:") && msg.contains("csv-report"),
        "{msg}"
    );

    let msg = gw
        .delete(&format!("/v1/skills/{id}/versions/{v1}"), &t)
        .await
        .ok();
    assert_eq!(msg, json!({ "id": v1, "type": "skill_version_deleted" }));
    gw.delete(&format!("/v1/skills/{id}/versions/{v2}"), &t)
        .await
        .error(400, "invalid_request_error");
    gw.delete(&format!("/v1/skills/{id}"), &stranger)
        .await
        .error(404, "not_found_error");
    let gone = gw.delete(&format!("/v1/skills/{id}"), &t).await.ok();
    assert_eq!(gone, json!({ "id": id, "type": "skill_deleted" }));
    gw.get(&format!("/v1/skills/{id}"), &t)
        .await
        .error(404, "not_found_error");
}

#[tokio::test]
async fn the_harness_routes_serve_a_skill_only_to_the_namespaces_own_harness() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3).await;
    let t = gw.tenant().await;
    let files = [("csv/SKILL.md", SKILL_MD), ("csv/scripts/run me.sh", "echo hi\n")];
    let skill = upload(&gw, &t, "/v1/skills", &files).await.ok();
    let id = skill["id"].as_str().unwrap();
    let version_url = format!(
        "{}/internal/v1/namespaces/{}/skills/{id}/versions/latest",
        gw.url, t.ns
    );
    let file_url = format!("{version_url}/files/scripts/run%20me.sh");
    let status = |res: reqwest::Response| res.status().as_u16();
    assert_eq!(status(gw.http.get(&version_url).send().await.unwrap()), 401);
    let res = gw.http.get(&file_url).bearer_auth(&t.key).send().await.unwrap();
    assert_eq!(status(res), 403, "an API key is not a harness's identity");

    crate::session_resources::ensure_namespace(&gw, SYSTEM).await;
    let own = crate::approvals::service_account_token(
        &gw,
        SYSTEM,
        &corral_api::labels::harness_name(&t.ns),
        Some("corral-gateway"),
    )
    .await;
    let version: serde_json::Value = gw
        .http
        .get(&version_url)
        .bearer_auth(&own)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["name"], "csv-report");
    assert_eq!(version["description"], "Turns a CSV into a report.");
    assert_eq!(version["version"], skill["latest_version_id"]);
    assert_eq!(
        version["files"],
        json!([{ "path": "SKILL.md", "size": SKILL_MD.len() }, { "path": "scripts/run me.sh", "size": 8 }])
    );
    let res = gw.http.get(&file_url).bearer_auth(&own).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"echo hi\n");
    // Only the version's own files are served: the path is looked up among them, never used as a key.
    for missing in ["nope", "scripts", "SKILL.md/x", "scripts/run%20me.sh/.."] {
        let res = gw
            .http
            .get(format!("{version_url}/files/{missing}"))
            .bearer_auth(&own)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{missing}");
    }

    let other = crate::approvals::service_account_token(
        &gw,
        SYSTEM,
        &corral_api::labels::harness_name("some-other-tenant"),
        Some("corral-gateway"),
    )
    .await;
    let res = gw.http.get(&file_url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(
        status(res),
        403,
        "another tenant's harness reads nothing of this tenant"
    );
}
