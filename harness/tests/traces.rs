//! OpenTelemetry traces of a turn: the real harness process exports its spans over OTLP/HTTP to a receiver on
//! loopback, continuing the trace named by the `traceparent` the gateway stores with the user event, and the
//! sandbox daemon's time for each tool call as a `corral-sandbox` span. A real redis-server, a real sandbox daemon,
//! the scripted provider.
//!
//! Needs the sandbox daemon binary: `cargo build -p corral-sandbox`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Router, body::Bytes, extract::State, routing::post};
use corral_api::events::EventBody;
use corral_session::{Config, NewEvent, Order, Store, testing::RedisServer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const MANIFEST: &str = r#"kind: ConfigMap
apiVersion: v1
metadata: {name: s}
data:
  script.yaml: |
    turns:
      - content:
          - text: "Listing."
          - tool_use: {name: bash, input: {command: "echo hi"}}
        usage: {input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
      - content: [{text: "Done."}]
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: traced}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: s, key: script.yaml}}
  tools:
    - type: agent_toolset_20260401
"#;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<Bytes>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    received.lock().unwrap().push(body);
    ""
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_continues_the_trace_of_its_user_event_with_model_and_tool_spans() {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .expect("redis-server");
    let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent_file = dir.path().join("agent.yaml");
    std::fs::write(&agent_file, MANIFEST).unwrap();
    use std::os::unix::process::CommandExt;
    let mut harness = Command::new(env!("CARGO_BIN_EXE_corral-harness"))
        .args(["serve", "--namespace", "traces", "--log", "warn"])
        .args(["--metrics-addr", "127.0.0.1:0", "--otlp-endpoint", &collector])
        .arg("--redis-url")
        .arg(redis.url())
        .arg("--agent-file")
        .arg(&agent_file)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start corral-harness");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(harness.id()).unwrap());

    // The user event as the gateway stores it: the request's trace context under the private `corral` key.
    let log = store.session("traces", "sesn_traced");
    let body = serde_json::json!({
        "type": "user.message", "content": [{"type": "text", "text": "go"}],
        "corral": {"traceparent": format!("00-{TRACE_ID}-{PARENT_ID}-01")},
    });
    log.append_user([NewEvent::from(EventBody::Other(body))])
        .await
        .unwrap();
    store.enqueue("traces", "sesn_traced").await.unwrap();
    let mut idle = false;
    for _ in 0..300 {
        let page = log.range(None, 100, Order::Asc).await.unwrap();
        if page
            .events
            .iter()
            .any(|e| e.event.body.type_name() == "session.status_idle")
        {
            idle = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGTERM: the harness stops and exports what it buffered.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || harness.wait())
        .await
        .unwrap()
        .unwrap();
    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
    assert!(idle, "the turn did not end");
    assert!(status.success(), "{status:?}");

    // Each span with the `service.name` of the component it stands for.
    let (services, spans): (Vec<String>, Vec<Span>) = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| {
            ExportTraceServiceRequest::decode(body.as_ref())
                .expect("OTLP protobuf")
                .resource_spans
        })
        .flat_map(|r| {
            let service = r
                .resource
                .iter()
                .flat_map(|res| &res.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| format!("{:?}", a.value))
                .unwrap_or_default();
            r.scope_spans
                .into_iter()
                .flat_map(|s| s.spans)
                .map(move |span| (service.clone(), span))
        })
        .unzip();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let turn = spans
        .iter()
        .find(|s| s.name == "turn")
        .unwrap_or_else(|| panic!("no turn span in {names:?}"));
    assert_eq!(
        hex(&turn.trace_id),
        TRACE_ID,
        "the turn continues the gateway's trace"
    );
    assert_eq!(hex(&turn.parent_span_id), PARENT_ID);
    let in_turn = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name == name && s.trace_id == turn.trace_id)
            .collect::<Vec<_>>()
    };
    let models = in_turn("model_request");
    assert_eq!(models.len(), 2, "{names:?}");
    assert!(models.iter().all(|s| s.parent_span_id == turn.span_id));
    let first = models.iter().find(|s| {
        s.attributes
            .iter()
            .any(|a| a.key == "input_tokens" && format!("{:?}", a.value).contains("IntValue(100)"))
    });
    assert!(first.is_some(), "the model span carries its tokens: {models:?}");
    let tools = in_turn("tool_call");
    assert_eq!(tools.len(), 1, "{names:?}");
    assert!(
        tools[0]
            .attributes
            .iter()
            .any(|a| a.key == "tool" && format!("{:?}", a.value).contains("bash"))
    );

    // The sandbox daemon's own time for the call, exported by the harness for it under the tool call.
    let sandbox = in_turn("sandbox_execute");
    assert_eq!(sandbox.len(), 1, "{names:?}");
    let daemon = sandbox[0];
    assert_eq!(
        daemon.parent_span_id, tools[0].span_id,
        "a child of the tool call"
    );
    let index = spans.iter().position(|s| std::ptr::eq(s, daemon)).unwrap();
    assert!(
        services[index].contains("corral-sandbox"),
        "exported as the sandbox's span: {}",
        services[index]
    );
    let harness_index = spans.iter().position(|s| std::ptr::eq(s, tools[0])).unwrap();
    assert!(
        services[harness_index].contains("corral-harness"),
        "{}",
        services[harness_index]
    );
    assert!(
        daemon.start_time_unix_nano >= tools[0].start_time_unix_nano
            && daemon.end_time_unix_nano <= tools[0].end_time_unix_nano
            && daemon.end_time_unix_nano > daemon.start_time_unix_nano,
        "inside the tool call: {daemon:?} in {:?}",
        tools[0]
    );
}
