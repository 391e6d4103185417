//! The watch-fed session cache: a send checks its session without the API server once the watch has seen it, and
//! a deleted session is a 404 whichever way it went.

use std::time::Duration;

use corral_api::Session;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};

use crate::harness::{Gateway, Tenant};

fn message() -> Value {
    json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] })
}

/// The gateway's `corral_gateway_session_api_reads_total` with `reason`.
async fn api_reads(gw: &Gateway, reason: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", gw.metrics_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("corral_gateway_session_api_reads_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Lists the session's events until one list is answered without reading the API server (the watch has seen the
/// session); fails after 10 s.
async fn until_cached(gw: &Gateway, t: &Tenant, id: &str) {
    for _ in 0..200 {
        let before = api_reads(gw, "not_cached").await;
        gw.get(&format!("/v1/sessions/{id}/events"), t).await.ok();
        if api_reads(gw, "not_cached").await == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the session cache never answered for {id}");
}

#[tokio::test]
async fn sends_check_their_session_in_the_watch_fed_cache() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    let path = format!("/v1/sessions/{id}/events");
    // A session created an instant ago may not be cached yet: its first send asks the API server and works.
    gw.post(&path, &t, message()).await.ok();
    until_cached(&gw, &t, &id).await;
    let reads = ["watch_down", "not_cached", "forgotten"];
    let mut before = Vec::new();
    for reason in reads {
        before.push(api_reads(&gw, reason).await);
    }
    for _ in 0..3 {
        gw.post(&path, &t, message()).await.ok();
    }
    for (reason, before) in reads.into_iter().zip(before) {
        assert_eq!(
            api_reads(&gw, reason).await,
            before,
            "sends read the API server ({reason})"
        );
    }
    // An id no session has: asked, and a 404.
    gw.post("/v1/sessions/sesn-none/events", &t, message())
        .await
        .error(404, "not_found_error");

    // Deleted through this gateway: a 404 at once, before its watch says so.
    gw.delete(&format!("/v1/sessions/{id}"), &t).await.ok();
    gw.post(&path, &t, message()).await.error(404, "not_found_error");
    assert!(api_reads(&gw, "forgotten").await + api_reads(&gw, "not_cached").await > 0);
}

#[tokio::test]
async fn a_session_deleted_behind_the_gateways_back_is_a_404_once_its_watch_says_so() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, id) = gw.session(&t).await;
    until_cached(&gw, &t, &id).await;
    let sessions: Api<Session> = Api::namespaced(gw.kube.clone(), &t.ns);
    sessions.delete(&id, &DeleteParams::default()).await.unwrap();
    let path = format!("/v1/sessions/{id}/events");
    for _ in 0..200 {
        if gw.post(&path, &t, message()).await.status == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sends to a deleted session were still accepted after 10 s");
}
