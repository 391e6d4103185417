//! The Files API's bounds against a real S3-compatible server and a real Redis: a namespace's storage quota, upload
//! slots per namespace and per gateway, the idle timeout of a stalled upload, a client that disconnects mid-upload,
//! a client that sends too slowly, download headers, the background sweep of expired files, and the quota's counter
//! staying true through Redis failures and files stored before it existed.

use std::time::Duration;

use corral_gateway::{
    files::limits::{MinRate, UploadSlots},
    ratelimit::Limiter,
    state::Settings,
};
use redis::AsyncCommands;
use reqwest::multipart::{Form, Part};
use tokio::sync::mpsc;

use crate::{
    files::{download, ids, post_form, upload},
    harness::{Gateway, Reply, Tenant},
    s3::S3Server,
};

async fn gateway(storage: corral_gateway::files::FileStorage) -> Gateway {
    let settings = Settings {
        files: Some(storage),
        ..Settings::default()
    };
    Gateway::start_with_settings(Limiter::new(0, 0), settings).await
}

/// An upload whose body sends one chunk, then whatever `more` sends, and ends when `more`'s sender is dropped.
fn stalled_upload(gw: &Gateway, t: &Tenant) -> (mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<Reply>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1);
    let first = futures::stream::once(async { Ok::<_, std::io::Error>(vec![1u8; 1000]) });
    let rest = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(Ok)));
    let form = Form::new().part(
        "file",
        Part::stream(reqwest::Body::wrap_stream(futures::StreamExt::chain(first, rest)))
            .file_name("slow.bin"),
    );
    let (http, url, key) = (gw.http.clone(), gw.url.clone(), t.key.clone());
    let task = tokio::spawn(async move {
        let res = http
            .post(format!("{url}/v1/files"))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .expect("request");
        Gateway::read(res).await
    });
    (tx, task)
}

async fn usage(gw: &Gateway, t: &Tenant) -> u64 {
    let keys = corral_session::keys::Tenant::new(&t.ns).files();
    let used: Option<u64> = gw.store.connection().get(keys.usage()).await.unwrap();
    used.unwrap_or(0)
}

#[tokio::test]
async fn a_namespace_cannot_store_past_its_quota_and_a_delete_gives_room_back() {
    let s3 = S3Server::start().await;
    let mut storage = s3.storage(1 << 20);
    storage.namespace_quota_bytes = 150_000;
    let gw = gateway(storage).await;
    let t = gw.tenant().await;
    let other = gw.tenant().await;

    let first = upload(&gw, &t, "a.bin", vec![1; 100_000], None).await.ok();
    assert_eq!(usage(&gw, &t).await, 100_000);
    let reply = upload(&gw, &t, "b.bin", vec![2; 60_000], None).await;
    let msg = reply.error(413, "invalid_request_error");
    assert!(msg.contains("storage quota of 150000 bytes"), "{msg}");
    assert_eq!(
        reply.body["error"]["details"]["error_code"],
        "storage_quota_exceeded"
    );
    // Chunked: no Content-Length to refuse up front; cut once the stream passes the room left.
    let chunks = futures::stream::iter((0..6).map(|_| Ok::<_, std::io::Error>(vec![3u8; 10_000])));
    let form = Form::new().part(
        "file",
        Part::stream(reqwest::Body::wrap_stream(chunks)).file_name("c.bin"),
    );
    let reply = post_form(&gw, &t, form).await;
    reply.error(413, "invalid_request_error");
    assert_eq!(
        reply.body["error"]["details"]["error_code"],
        "storage_quota_exceeded"
    );
    assert_eq!(
        ids(&gw.get("/v1/files", &t).await.ok()).len(),
        1,
        "nothing over quota kept"
    );
    assert_eq!(usage(&gw, &t).await, 100_000);

    // Another namespace has a quota of its own.
    upload(&gw, &other, "o.bin", vec![4; 100_000], None).await.ok();

    let id = first["id"].as_str().unwrap();
    gw.delete(&format!("/v1/files/{id}"), &t).await.ok();
    assert_eq!(usage(&gw, &t).await, 0, "a deleted file's bytes are given back");
    upload(&gw, &t, "b.bin", vec![2; 60_000], None).await.ok();
}

#[tokio::test]
async fn upload_slots_are_shared_fairly_and_a_stalled_upload_times_out_keeping_nothing() {
    let s3 = S3Server::start().await;
    let mut storage = s3.storage(1 << 20);
    storage.slots = UploadSlots::new(2, 1);
    storage.idle_timeout = Duration::from_secs(3);
    let gw = gateway(storage).await;
    let (a, b, c) = (gw.tenant().await, gw.tenant().await, gw.tenant().await);

    let (_keep_a, stalled_a) = stalled_upload(&gw, &a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reply = upload(&gw, &a, "x.txt", b"x".to_vec(), None).await;
    reply.error(429, "rate_limit_error");
    assert_eq!(reply.body["error"]["details"]["error_code"], "too_many_uploads");
    assert!(reply.headers.contains_key("retry-after"), "{:?}", reply.headers);

    let (_keep_b, stalled_b) = stalled_upload(&gw, &b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reply = upload(&gw, &c, "x.txt", b"x".to_vec(), None).await;
    reply.error(503, "overloaded_error");
    assert_eq!(reply.body["error"]["details"]["error_code"], "too_many_uploads");

    // Both stalled uploads send nothing more: the idle timeout ends them and frees their slots.
    for stalled in [stalled_a, stalled_b] {
        let reply = tokio::time::timeout(Duration::from_secs(20), stalled)
            .await
            .expect("the stalled upload ends")
            .unwrap();
        reply.error(400, "invalid_request_error");
        assert_eq!(reply.body["error"]["details"]["error_code"], "upload_timeout");
    }
    assert_eq!(ids(&gw.get("/v1/files", &a).await.ok()).len(), 0, "nothing kept");
    upload(&gw, &a, "x.txt", b"x".to_vec(), None).await.ok();
    upload(&gw, &c, "x.txt", b"x".to_vec(), None).await.ok();
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing_and_frees_its_slot() {
    let s3 = S3Server::start().await;
    let mut storage = s3.storage(1 << 20);
    storage.slots = UploadSlots::new(4, 1);
    let gw = gateway(storage).await;
    let t = gw.tenant().await;

    let (more, task) = stalled_upload(&gw, &t);
    more.send(vec![2u8; 100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    task.abort();
    drop(more);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = upload(&gw, &t, "after.txt", b"after".to_vec(), None).await;
        if reply.status.is_success() {
            break;
        }
        assert_eq!(reply.status.as_u16(), 429, "{:?}", reply.body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the disconnected upload never freed its slot"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = gw.get("/v1/files", &t).await.ok();
    assert_eq!(ids(&listed).len(), 1, "only the later upload: {listed}");
    assert_eq!(usage(&gw, &t).await, 5);
}

#[tokio::test]
async fn downloads_are_attachments_and_expired_files_go_without_anyone_listing() {
    let s3 = S3Server::start().await;
    let mut storage = s3.storage(1 << 20);
    storage.sweep_interval = Duration::from_secs(1);
    let gw = gateway(storage).await;
    let t = gw.tenant().await;

    let file = upload(
        &gw,
        &t,
        "page.html",
        b"<script>alert(1)</script>".to_vec(),
        Some("3600"),
    )
    .await
    .ok();
    let id = file["id"].as_str().unwrap().to_owned();
    let res = download(&gw, &t, &id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"page.html\""),
        "{disposition}"
    );

    // The expiry passes; nobody lists or fetches: the background sweep removes the file and gives its bytes back.
    let keys = corral_session::keys::Tenant::new(&t.ns).files();
    let past = jiff::Timestamp::now().as_millisecond() - 1000;
    let mut redis = gw.store.connection();
    let _: () = redis.hset(keys.file(&id), "expires_at", past).await.unwrap();
    let _: () = redis.zadd(keys.expiring(), &id, past).await.unwrap();
    // Expiry entries whose metadata is gone, due before the real file and more than a sweep's batch: the sweep
    // drops them instead of stalling on them.
    for n in 0..150 {
        let ghost = format!("file_{}", ulid::Ulid::new());
        let _: () = redis
            .zadd(keys.expiring(), ghost, past - 10_000 - n)
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let exists: bool = redis.exists(keys.file(&id)).await.unwrap();
        if !exists {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background sweep never removed the expired file"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(usage(&gw, &t).await, 0);
    let left: u64 = redis.zcard(keys.expiring()).await.unwrap();
    assert_eq!(left, 0, "the expiry entries without metadata are dropped");
    let blob = s3
        .storage(1)
        .blobs
        .get(&corral_gateway::files::meta::blob_key(&t.ns, &id))
        .await;
    assert!(blob.is_err(), "the expired file's bytes are removed");
}

#[tokio::test]
async fn an_upload_slower_than_the_minimum_rate_fails_and_frees_its_slot() {
    let s3 = S3Server::start().await;
    let mut storage = s3.storage(1 << 20);
    storage.slots = UploadSlots::new(4, 1);
    storage.min_rate = MinRate {
        bytes_per_second: 10_000,
        window: Duration::from_secs(2),
    };
    let gw = gateway(storage).await;
    let t = gw.tenant().await;

    // A trickle well inside the idle timeout (30 s) but far under 10 kB/s.
    let (more, task) = stalled_upload(&gw, &t);
    let trickle = tokio::spawn(async move {
        while more.send(vec![5u8; 100]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let reply = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the slow upload is ended")
        .unwrap();
    trickle.abort();
    let msg = reply.error(400, "invalid_request_error");
    assert!(msg.contains("KiB per second"), "{msg}");
    assert_eq!(reply.body["error"]["details"]["error_code"], "upload_too_slow");
    assert_eq!(ids(&gw.get("/v1/files", &t).await.ok()).len(), 0, "nothing kept");
    assert_eq!(usage(&gw, &t).await, 0);
    // A normal upload is quick enough, and the slot is free again.
    upload(&gw, &t, "quick.bin", vec![6; 200_000], None).await.ok();
}

#[tokio::test]
async fn a_redis_failure_while_deleting_leaves_the_file_whole_and_counted() {
    let s3 = S3Server::start().await;
    let gw = gateway(s3.storage(1 << 20)).await;
    let t = gw.tenant().await;
    let id = upload(&gw, &t, "a.bin", vec![1; 1000], None).await.ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The counter becomes unreadable: the delete's one script fails before it changes anything.
    let keys = corral_session::keys::Tenant::new(&t.ns).files();
    let mut redis = gw.store.connection();
    let _: () = redis.del(keys.usage()).await.unwrap();
    let _: () = redis.hset(keys.usage(), "broken", 1).await.unwrap();
    let reply = gw.delete(&format!("/v1/files/{id}"), &t).await;
    assert_eq!(reply.status.as_u16(), 503, "{:?}", reply.body);
    gw.get(&format!("/v1/files/{id}"), &t).await.ok();
    assert_eq!(
        download(&gw, &t, &id).await.status(),
        200,
        "its bytes are still there"
    );
    let charged: Option<u64> = redis.hget(keys.charged(), &id).await.unwrap();
    assert_eq!(charged, Some(1000), "still counted");

    let _: () = redis.del(keys.usage()).await.unwrap();
    let _: () = redis.set(keys.usage(), 1000).await.unwrap();
    gw.delete(&format!("/v1/files/{id}"), &t).await.ok();
    assert_eq!(usage(&gw, &t).await, 0);
    gw.get(&format!("/v1/files/{id}"), &t)
        .await
        .error(404, "not_found_error");
}

#[tokio::test]
async fn an_expiring_upload_is_kept_when_the_sweeps_set_cannot_be_written() {
    let s3 = S3Server::start().await;
    let gw = gateway(s3.storage(1 << 20)).await;
    let t = gw.tenant().await;
    // The namespace set of the background sweep (another slot, written after the file's script) fails.
    let set = corral_session::keys::system::expiring_file_namespaces();
    let mut redis = gw.store.connection();
    let _: () = redis.set(&set, "not a set").await.unwrap();

    let file = upload(&gw, &t, "e.txt", b"expiring".to_vec(), Some("3600"))
        .await
        .ok();
    let id = file["id"].as_str().unwrap();
    let res = download(&gw, &t, id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"expiring");
    assert_eq!(usage(&gw, &t).await, 8, "counted once");
    gw.delete(&format!("/v1/files/{id}"), &t).await.ok();
    assert_eq!(usage(&gw, &t).await, 0, "released once");
}

#[tokio::test]
async fn deleting_a_file_stored_before_the_counter_gives_back_nothing() {
    let s3 = S3Server::start().await;
    let gw = gateway(s3.storage(1 << 20)).await;
    let t = gw.tenant().await;
    upload(&gw, &t, "new.bin", vec![1; 100_000], None).await.ok();
    // A file indexed before the quota existed: metadata and index entry, no charge.
    let keys = corral_session::keys::Tenant::new(&t.ns).files();
    let old = format!("file_{}", ulid::Ulid::new());
    let mut redis = gw.store.connection();
    let fields = [
        ("filename", "old.bin".to_owned()),
        ("mime_type", "application/octet-stream".to_owned()),
        ("size_bytes", "60000".to_owned()),
        ("created_at", jiff::Timestamp::now().as_millisecond().to_string()),
        ("downloadable", "true".to_owned()),
    ];
    let _: () = redis.hset_multiple(keys.file(&old), &fields).await.unwrap();
    let _: () = redis.zadd(keys.index(), &old, 0).await.unwrap();
    assert_eq!(ids(&gw.get("/v1/files", &t).await.ok()).len(), 2);

    gw.delete(&format!("/v1/files/{old}"), &t).await.ok();
    assert_eq!(
        usage(&gw, &t).await,
        100_000,
        "the uncounted file's delete leaves the counted one's bytes counted"
    );
}
