//! The Files API against a real S3-compatible server (SeaweedFS), a real Redis and a real API server: upload, list
//! newest first, metadata, download, delete; another tenant's key finds nothing; the size limit's 413; expiry.

use corral_gateway::{ratelimit::Limiter, state::Settings};
use redis::AsyncCommands;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::{
    harness::{Gateway, Reply, Tenant},
    s3::S3Server,
};

async fn gateway(s3: &S3Server, max_bytes: u64) -> Gateway {
    let settings = Settings {
        files: Some(s3.storage(max_bytes)),
        ..Settings::default()
    };
    Gateway::start_with_settings(Limiter::new(0, 0), settings).await
}

pub(crate) async fn upload(
    gw: &Gateway,
    t: &Tenant,
    name: &str,
    bytes: Vec<u8>,
    expires: Option<&str>,
) -> Reply {
    let mut form = Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str("text/plain")
            .unwrap(),
    );
    if let Some(e) = expires {
        form = form.text("expires_in_seconds", e.to_owned());
    }
    post_form(gw, t, form).await
}

/// `POST /v1/files` with `form` as `t`.
pub(crate) async fn post_form(gw: &Gateway, t: &Tenant, form: Form) -> Reply {
    let res = gw
        .http
        .post(format!("{}/v1/files", gw.url))
        .bearer_auth(&t.key)
        .multipart(form)
        .send()
        .await
        .expect("request");
    Gateway::read(res).await
}

/// `GET /v1/files/{id}/content` as `t`.
pub(crate) async fn download(gw: &Gateway, t: &Tenant, id: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}/v1/files/{id}/content", gw.url))
        .bearer_auth(&t.key)
        .send()
        .await
        .expect("request")
}

pub(crate) async fn content(gw: &Gateway, t: &Tenant, id: &str) -> (u16, Vec<u8>) {
    let res = download(gw, t, id).await;
    (res.status().as_u16(), res.bytes().await.expect("body").to_vec())
}

pub(crate) fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn upload_list_download_delete_and_other_tenants_find_nothing() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3, 1 << 20).await;
    let t = gw.tenant().await;
    let stranger = gw.tenant().await;

    let first = upload(&gw, &t, "notes/a.txt", b"first file".to_vec(), None)
        .await
        .ok();
    assert!(first["id"].as_str().unwrap().starts_with("file_"), "{first}");
    assert_eq!(first["type"], "file");
    assert_eq!(first["filename"], "a.txt", "only the last path component is kept");
    assert_eq!(first["mime_type"], "text/plain");
    assert_eq!(first["size_bytes"], 10);
    assert_eq!(first["downloadable"], true);
    assert_eq!(first["expires_at"], Value::Null);
    assert_eq!(first["scope"], Value::Null);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let second = upload(&gw, &t, "b.bin", payload.clone(), None).await.ok();
    let (a, b) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());

    let list = gw.get("/v1/files", &t).await.ok();
    assert_eq!(ids(&list), [b, a], "newest first");
    assert_eq!(list["next_page"], Value::Null);
    let page = gw.get("/v1/files?limit=1", &t).await.ok();
    assert_eq!(ids(&page), [b]);
    let next = page["next_page"].as_str().expect("a next page");
    let page = gw.get(&format!("/v1/files?limit=1&page={next}"), &t).await.ok();
    assert_eq!(ids(&page), [a]);
    assert_eq!(page["next_page"], Value::Null);
    let only = gw.get(&format!("/v1/files?ids={a}"), &t).await.ok();
    assert_eq!(ids(&only), [a]);
    let none = gw.get("/v1/files?scope_id=sesn-nothing", &t).await.ok();
    assert_eq!(ids(&none), Vec::<String>::new(), "no file belongs to that scope");
    let msg = gw
        .get("/v1/files?colour=red", &t)
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("colour:"), "{msg}");

    assert_eq!(gw.get(&format!("/v1/files/{a}"), &t).await.ok(), first);
    assert_eq!(content(&gw, &t, b).await, (200, payload));

    // Another namespace's key: nothing is there.
    gw.get(&format!("/v1/files/{a}"), &stranger)
        .await
        .error(404, "not_found_error");
    assert_eq!(content(&gw, &stranger, a).await.0, 404);
    gw.delete(&format!("/v1/files/{a}"), &stranger)
        .await
        .error(404, "not_found_error");
    assert_eq!(
        ids(&gw.get("/v1/files", &stranger).await.ok()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&gw.get(&format!("/v1/files?ids={a}"), &stranger).await.ok()),
        Vec::<String>::new()
    );

    let deleted = gw.delete(&format!("/v1/files/{a}"), &t).await.ok();
    assert_eq!(deleted, serde_json::json!({ "id": a, "type": "file_deleted" }));
    gw.get(&format!("/v1/files/{a}"), &t)
        .await
        .error(404, "not_found_error");
    assert_eq!(content(&gw, &t, a).await.0, 404);
    assert_eq!(ids(&gw.get("/v1/files", &t).await.ok()), [b]);
    gw.get("/v1/files/file_..%2F..%2Fx", &t)
        .await
        .error(404, "not_found_error");
}

#[tokio::test]
async fn the_size_limit_is_a_413_and_expired_files_are_removed() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3, 100_000).await;
    let t = gw.tenant().await;

    let reply = upload(&gw, &t, "big.bin", vec![7; 100_001], None).await;
    let msg = reply.error(413, "invalid_request_error");
    assert!(msg.contains("100000 bytes"), "{msg}");
    assert_eq!(reply.body["error"]["details"]["error_code"], "file_too_large");
    // Chunked (no Content-Length): cut while it streams, nothing kept.
    let chunks = futures::stream::iter((0..30).map(|_| Ok::<_, std::io::Error>(vec![1u8; 10_000])));
    let form = Form::new().part(
        "file",
        Part::stream(reqwest::Body::wrap_stream(chunks)).file_name("s.bin"),
    );
    post_form(&gw, &t, form).await.error(413, "invalid_request_error");
    assert_eq!(
        ids(&gw.get("/v1/files", &t).await.ok()),
        Vec::<String>::new(),
        "nothing kept"
    );
    assert!(
        upload(&gw, &t, "ok.bin", vec![7; 100_000], None)
            .await
            .status
            .is_success()
    );

    // A text part of any length streamed without a Content-Length is refused once past its few bytes, not held.
    let digits = futures::stream::iter((0..32).map(|_| Ok::<_, std::io::Error>(vec![b'9'; 16 * 1024])));
    let form = Form::new()
        .part(
            "expires_in_seconds",
            Part::stream(reqwest::Body::wrap_stream(digits)),
        )
        .part("file", Part::bytes(b"x".to_vec()).file_name("f.txt"));
    let msg = post_form(&gw, &t, form).await.error(400, "invalid_request_error");
    assert!(msg.contains("longer than 64 bytes"), "{msg}");

    let msg = upload(&gw, &t, "e.txt", b"x".to_vec(), Some("60"))
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("expires_in_seconds:"), "{msg}");
    let file = upload(&gw, &t, "e.txt", b"soon gone".to_vec(), Some("3600"))
        .await
        .ok();
    let id = file["id"].as_str().unwrap().to_owned();
    let created: jiff::Timestamp = file["created_at"].as_str().unwrap().parse().unwrap();
    let expires: jiff::Timestamp = file["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires.duration_since(created).as_secs(), 3600);
    assert_eq!(content(&gw, &t, &id).await, (200, b"soon gone".to_vec()));

    // An hour passes: move the expiry into the past where the gateway keeps it.
    let keys = corral_session::keys::Tenant::new(&t.ns).files();
    let past = jiff::Timestamp::now().as_millisecond() - 1000;
    let mut redis = gw.store.connection();
    let _: () = redis.hset(keys.file(&id), "expires_at", past).await.unwrap();
    let _: () = redis.zadd(keys.expiring(), &id, past).await.unwrap();
    gw.get(&format!("/v1/files/{id}"), &t)
        .await
        .error(404, "not_found_error");
    assert!(!ids(&gw.get("/v1/files", &t).await.ok()).contains(&id));
    let exists: bool = redis.exists(keys.file(&id)).await.unwrap();
    assert!(!exists, "the expired file's metadata is removed");
    let storage = s3.storage(1);
    assert!(
        storage
            .blobs
            .get(&corral_gateway::files::meta::blob_key(&t.ns, &id))
            .await
            .is_err(),
        "the expired file's bytes are removed"
    );
}
