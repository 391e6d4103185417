//! A sent user event carries its request's trace context into the session log: with OTLP export on, the gateway's
//! `send_events` span goes to a receiver on loopback, and the stored event holds the `traceparent` of that span
//! (under the private `corral` key, never shown by the API), from which the harness continues the turn's trace.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, routing::post};
use corral_session::keys::SessionKeys;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;

use crate::harness::Gateway;

type Received = Arc<Mutex<Vec<Bytes>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    received.lock().unwrap().push(body);
    ""
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_user_event_stores_the_trace_context_of_its_request() {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    // This test binary's only subscriber: logs off, spans exported to the receiver.
    corral_runtime::LogArgs {
        filter: "off".into(),
        format: corral_runtime::logging::LogFormat::Text,
        otlp_endpoint: collector,
        service_name: "corral-gateway-test".into(),
    }
    .init()
    .unwrap();

    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    let sent = gw
        .post(
            &format!("/v1/sessions/{session}/events"),
            &t,
            json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
        )
        .await
        .ok();
    assert!(sent["data"][0].get("corral").is_none(), "{sent}");

    // The raw log entry holds the traceparent; the API does not show it.
    let mut conn = gw.store.connection();
    let key = SessionKeys::new(&t.ns, &session).events();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let data = &entries[0].1.iter().find(|(k, _)| k == "data").unwrap().1;
    let stored: serde_json::Value = serde_json::from_str(data).unwrap();
    let traceparent = stored["corral"]["traceparent"]
        .as_str()
        .expect("a stored traceparent")
        .to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0]), (4, "00"), "{traceparent}");
    let listed = gw.get(&format!("/v1/sessions/{session}/events"), &t).await.ok();
    assert!(listed["data"][0].get("corral").is_none(), "{listed}");

    // The exported send_events span is the one the traceparent names.
    tokio::task::spawn_blocking(corral_runtime::telemetry::flush)
        .await
        .unwrap();
    let spans: Vec<_> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| {
            ExportTraceServiceRequest::decode(b.as_ref())
                .unwrap()
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let send = spans
        .iter()
        .find(|s| s.name == "send_events" && hex(&s.span_id) == parts[2])
        .unwrap_or_else(|| {
            panic!(
                "no send_events span {} among {:?}",
                parts[2],
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(hex(&send.trace_id), parts[1]);
}
