//! Session outputs against a real API server, Redis and S3 server: the internal route the harness stores a
//! sandbox's outputs through, which only the namespace's own harness opens; a stored output is a File scoped to
//! the session, a changed one replaces its earlier File, and the quota holds.

use corral_gateway::{ratelimit::Limiter, state::Settings};
use serde_json::Value;

use crate::{
    harness::{Gateway, Tenant},
    s3::S3Server,
};

/// The namespace the test's "harnesses" run in.
const SYSTEM: &str = "corral-it-output-harnesses";

async fn gateway(s3: &S3Server, quota: u64) -> Gateway {
    let mut files = s3.storage(1 << 20);
    files.namespace_quota_bytes = quota;
    let settings = Settings {
        files: Some(files),
        harness_namespace: Some(SYSTEM.into()),
        ..Settings::default()
    };
    Gateway::start_with_settings(Limiter::new(0, 0), settings).await
}

async fn harness_token(gw: &Gateway, namespace: &str) -> String {
    crate::session_resources::ensure_namespace(gw, SYSTEM).await;
    crate::approvals::service_account_token(
        gw,
        SYSTEM,
        &corral_api::labels::harness_name(namespace),
        Some("corral-gateway"),
    )
    .await
}

fn outputs_url(gw: &Gateway, t: &Tenant, session: &str) -> String {
    format!(
        "{}/internal/v1/namespaces/{}/sessions/{session}/outputs",
        gw.url, t.ns
    )
}

async fn put(
    gw: &Gateway,
    token: &str,
    url: &str,
    path: &str,
    fingerprint: &str,
    body: &'static [u8],
) -> (u16, Value) {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.query_pairs_mut()
        .append_pair("path", path)
        .append_pair("fingerprint", fingerprint);
    let res = gw
        .http
        .put(url)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// What the gateway says it stored for the session: path → fingerprint.
async fn stored(gw: &Gateway, token: &str, url: &str) -> Value {
    let res = gw.http.get(url).bearer_auth(token).send().await.unwrap();
    res.json::<Value>().await.unwrap()["outputs"].clone()
}

#[tokio::test]
async fn outputs_become_session_files_and_a_changed_one_replaces_its_file() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3, 1 << 20).await;
    let t = gw.tenant().await;
    let token = harness_token(&gw, &t.ns).await;
    let url = outputs_url(&gw, &t, "sesn-out-1");

    let (status, first) = put(&gw, &token, &url, "charts/q1.csv", "5:1", b"a,b\n1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["filename"], "charts/q1.csv");
    assert_eq!(first["mime_type"], "text/csv");
    assert_eq!(first["size_bytes"], 5);
    assert_eq!(
        first["scope"],
        serde_json::json!({ "type": "session", "id": "sesn-out-1" })
    );
    assert_eq!(
        stored(&gw, &token, &url).await,
        serde_json::json!({ "charts/q1.csv": "5:1" })
    );

    let (status, second) = put(&gw, &token, &url, "charts/q1.csv", "6:2", b"a,b\n12").await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["id"], first["id"]);
    let listed = gw.get("/v1/files?scope_id=sesn-out-1", &t).await.ok();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [second["id"].as_str().unwrap()],
        "the earlier version's File is gone"
    );
    let gone = format!("/v1/files/{}", first["id"].as_str().unwrap());
    gw.get(&gone, &t).await.error(404, "not_found_error");
    let content = format!("{}/v1/files/{}/content", gw.url, second["id"].as_str().unwrap());
    let bytes = gw
        .http
        .get(&content)
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), b"a,b\n12");
    let none = gw.get("/v1/files?scope_id=sesn-other", &t).await.ok();
    assert_eq!(
        none["data"],
        serde_json::json!([]),
        "another session's scope lists nothing"
    );

    let (status, err) = put(&gw, &token, &url, "../escape", "1:1", b"x").await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().starts_with("path:"),
        "{err}"
    );
}

#[tokio::test]
async fn only_the_namespaces_own_harness_stores_outputs() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3, 1 << 20).await;
    let t = gw.tenant().await;
    let url = outputs_url(&gw, &t, "sesn-out-2");
    let (status, _) = put(&gw, "", &url, "a.txt", "1:1", b"x").await;
    assert_eq!(status, 401);
    let (status, _) = put(&gw, &t.key, &url, "a.txt", "1:1", b"x").await;
    assert_eq!(status, 403, "an API key is not a harness's identity");
    let stranger = harness_token(&gw, "some-other-tenant").await;
    let (status, _) = put(&gw, &stranger, &url, "a.txt", "1:1", b"x").await;
    assert_eq!(status, 403, "another tenant's harness stores nothing here");
    let res = gw.http.get(&url).bearer_auth(&stranger).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let listed = gw.get("/v1/files", &t).await.ok();
    assert_eq!(listed["data"], serde_json::json!([]));
}

#[tokio::test]
async fn an_output_past_the_quota_is_refused_and_nothing_is_kept() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3, 8).await;
    let t = gw.tenant().await;
    let token = harness_token(&gw, &t.ns).await;
    let url = outputs_url(&gw, &t, "sesn-out-3");
    let (status, err) = put(&gw, &token, &url, "big.bin", "9:1", b"123456789").await;
    assert_eq!(status, 413, "{err}");
    assert_eq!(
        err["error"]["details"]["error_code"], "storage_quota_exceeded",
        "{err}"
    );
    assert_eq!(stored(&gw, &token, &url).await, serde_json::json!({}));
    assert_eq!(gw.get("/v1/files", &t).await.ok()["data"], serde_json::json!([]));
    let (status, ok) = put(&gw, &token, &url, "small.txt", "3:1", b"abc").await;
    assert_eq!(status, 200, "{ok}");
}
