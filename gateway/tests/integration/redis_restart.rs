//! A Redis restart under a running gateway: the first request after it is answered, not a 503.

use reqwest::Method;
use serde_json::json;

use crate::harness::Gateway;

#[tokio::test]
async fn the_first_read_after_a_redis_restart_is_answered() {
    let mut gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    let events = format!("/v1/sessions/{session}/events");
    let message =
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "kept" }] }] });
    gw.post(&events, &t, message).await.ok();
    let before = gw.get(&events, &t).await.ok();
    assert_eq!(before["data"].as_array().map(Vec::len), Some(1), "{before}");

    // SIGKILL and start again on the same port and append-only file: the gateway's connection is now dead.
    gw.redis.as_mut().expect("redis").restart().expect("restart");

    let after = gw.call(Method::GET, &events, Some(&t), None).await;
    assert_eq!(
        after.status, 200,
        "the first read after the restart: {}",
        after.body
    );
    assert_eq!(after.body["data"], before["data"], "the log survived the restart");
    gw.get(&format!("/v1/sessions/{session}"), &t).await.ok();
}
