//! The Anthropic Messages provider against recorded SSE responses served by a real HTTP server on loopback.
#![allow(clippy::unwrap_used)] // a test crate: helpers outside #[test] fns unwrap too

#[path = "providers_support.rs"]
mod support;

use corral_harness::providers::{
    AnthropicConfig, AnthropicProvider, ApiKey, CacheHints, ErrorKind, Message, ModelRequest, Provider,
    ProviderEvent, StopReason, Thinking, ToolCall, ToolDefinition, ToolInput, Usage, collect,
};
use serde_json::json;
use support::{Recorded, Server, closed_port_url, drain, events_then_error, fast_http};

const KEY: &str = "sk-ant-test-secret-key";

fn provider(base_url: &str) -> AnthropicProvider {
    let mut config = AnthropicConfig::new(ApiKey::new(KEY));
    config.base_url = base_url.to_owned();
    config.http = fast_http();
    AnthropicProvider::new(config).unwrap()
}

fn request() -> ModelRequest {
    let mut request = ModelRequest::new(
        "claude-sonnet-4-6",
        4096,
        vec![Message::user_text("Summarize README.md")],
    );
    request.system = Some("You are a coding agent.".into());
    request.tools = vec![ToolDefinition {
        name: "read_file".into(),
        description: "Read a file from the workspace.".into(),
        input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }];
    request.thinking = Some(Thinking::Adaptive);
    request.cache = CacheHints::agent_loop();
    request
}

/// Builds an SSE body from `(event, data)` pairs.
fn sse(events: &[(&str, serde_json::Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

fn message_start(input: u64, cache_read: u64) -> (&'static str, serde_json::Value) {
    (
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_01AbCd", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cache_read,
                      "output_tokens": 2}}}),
    )
}

fn text_block(index: usize, pieces: &[&str]) -> Vec<(&'static str, serde_json::Value)> {
    let mut events = vec![(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
    )];
    for piece in pieces {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    ));
    events
}

fn ending(stop_reason: &str, output: u64) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": output}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

/// The documented worked example with thinking on: thinking, text, then a tool call whose input arrives in
/// several `input_json_delta`s, with a ping in the middle.
fn worked_example() -> String {
    let mut events = vec![message_start(412, 1830)];
    events.extend([
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "The user wants a summary; "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "I need the file."}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "signature_delta", "signature": "EqQBCkYIBxgCKkD..."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
    ]);
    let mut text = text_block(1, &["I'll open", " the file first (héllo ✓)."]);
    text.insert(2, ("ping", json!({"type": "ping"})));
    events.extend(text);
    events.extend([
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2,
                   "content_block": {"type": "tool_use", "id": "toolu_01QxR", "name": "read_file", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"READ"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "ME.md\"}"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
    ]);
    events.extend(ending("tool_use", 48));
    sse(&events)
}

#[tokio::test]
async fn thinking_text_and_a_tool_call_split_over_deltas_are_decoded() {
    // 7-byte pieces split event lines, JSON and the multi-byte characters across network chunks.
    let server = Server::start(vec![Recorded::sse(&worked_example(), 7)]).await;
    let events: Vec<ProviderEvent> = drain(provider(&server.url).stream(request()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let expected = vec![
        ProviderEvent::ThinkingStart { index: 0 },
        ProviderEvent::ThinkingDelta {
            index: 0,
            text: "The user wants a summary; ".into(),
        },
        ProviderEvent::ThinkingDelta {
            index: 0,
            text: "I need the file.".into(),
        },
        ProviderEvent::ThinkingComplete {
            index: 0,
            thinking: "The user wants a summary; I need the file.".into(),
            signature: Some("EqQBCkYIBxgCKkD...".into()),
        },
        ProviderEvent::TextDelta {
            index: 1,
            text: "I'll open".into(),
        },
        ProviderEvent::TextDelta {
            index: 1,
            text: " the file first (héllo ✓).".into(),
        },
        ProviderEvent::TextComplete {
            index: 1,
            text: "I'll open the file first (héllo ✓).".into(),
        },
        ProviderEvent::ToolCallStart {
            index: 2,
            id: "toolu_01QxR".into(),
            name: "read_file".into(),
        },
        ProviderEvent::ToolCallDelta {
            index: 2,
            json: "{\"path\": \"READ".into(),
        },
        ProviderEvent::ToolCallDelta {
            index: 2,
            json: "ME.md\"}".into(),
        },
        ProviderEvent::ToolCallComplete {
            index: 2,
            call: ToolCall {
                id: "toolu_01QxR".into(),
                name: "read_file".into(),
                input: ToolInput::Valid(json!({"path": "README.md"})),
            },
        },
        ProviderEvent::Usage(Usage {
            input_tokens: 412,
            output_tokens: 48,
            cache_read_input_tokens: 1830,
            cache_creation_input_tokens: 0,
        }),
        ProviderEvent::Stop {
            reason: StopReason::ToolUse,
            raw: Some("tool_use".into()),
        },
    ];
    assert_eq!(events, expected);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), KEY);
    assert_eq!(sent.header("anthropic-version"), "2026-10-21");
    assert_eq!(sent.header("authorization"), "");
    assert_eq!(sent.body["stream"], json!(true));
    assert_eq!(sent.body["model"], json!("claude-sonnet-4-6"));
    assert_eq!(sent.body["thinking"], json!({"type": "adaptive"}));
    assert_eq!(
        sent.body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        sent.body["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        sent.body["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert!(sent.body.get("temperature").is_none());
}

#[tokio::test]
async fn collecting_a_turn_gives_the_blocks_to_echo_back() {
    let server = Server::start(vec![Recorded::sse(&worked_example(), 64)]).await;
    let turn = collect(provider(&server.url).stream(request())).await.unwrap();
    assert_eq!(turn.stop_reason, StopReason::ToolUse);
    assert_eq!(turn.tool_calls.len(), 1);
    let message = serde_json::to_value(turn.message()).unwrap();
    assert_eq!(
        message,
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants a summary; I need the file.",
             "signature": "EqQBCkYIBxgCKkD..."},
            {"type": "text", "text": "I'll open the file first (héllo ✓)."},
            {"type": "tool_use", "id": "toolu_01QxR", "name": "read_file", "input": {"path": "README.md"}},
        ]})
    );
}

#[tokio::test]
async fn stop_reasons_map_to_neutral_ones() {
    let cases = [
        ("end_turn", StopReason::EndTurn),
        ("stop_sequence", StopReason::EndTurn),
        ("max_tokens", StopReason::MaxTokens),
        ("model_context_window_exceeded", StopReason::MaxTokens),
        ("refusal", StopReason::Refusal),
    ];
    let recordings = cases
        .iter()
        .map(|(raw, _)| {
            let mut events = vec![message_start(10, 0)];
            events.extend(text_block(0, &["Hi"]));
            events.extend(ending(raw, 5));
            Recorded::sse(&sse(&events), 1000)
        })
        .collect();
    let server = Server::start(recordings).await;
    let provider = provider(&server.url);
    for (raw, reason) in cases {
        let turn = collect(provider.stream(request())).await.unwrap();
        assert_eq!(
            (turn.stop_reason, turn.raw_stop_reason.as_deref()),
            (reason, Some(raw))
        );
        assert_eq!(turn.text(), "Hi");
        assert_eq!(turn.usage.unwrap().output_tokens, 5);
    }
}

#[tokio::test]
async fn an_error_event_after_output_ends_the_stream_without_a_retry() {
    let mut events = vec![message_start(10, 0)];
    events.extend(text_block(0, &["Partial"]));
    events.push((
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    let server = Server::start(vec![Recorded::sse(&sse(&events), 50)]).await;
    let (seen, err) = events_then_error(provider(&server.url).stream(request())).await;
    assert_eq!(
        seen.first(),
        Some(&ProviderEvent::TextDelta {
            index: 0,
            text: "Partial".into()
        })
    );
    let err = err.expect("an error");
    assert_eq!(err.kind, ErrorKind::Overloaded);
    assert_eq!(err.kind.session_error_type(), "model_overloaded_error");
    assert!(err.retryable);
    assert_eq!(err.status, None, "the error came inside a 200 stream");
    assert_eq!(err.request_id.as_deref(), Some("req_test"));
    assert_eq!(server.requests().len(), 1, "never retried once output began");
}

#[tokio::test]
async fn an_error_event_before_any_output_is_retried() {
    let overloaded = sse(&[
        message_start(10, 0),
        (
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ]);
    let mut ok = vec![message_start(10, 0)];
    ok.extend(text_block(0, &["Hello"]));
    ok.extend(ending("end_turn", 3));
    let server = Server::start(vec![
        Recorded::sse(&overloaded, 100),
        Recorded::sse(&sse(&ok), 100),
    ])
    .await;
    let turn = collect(provider(&server.url).stream(request())).await.unwrap();
    assert_eq!(turn.text(), "Hello");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn rate_limits_and_overload_are_retried_until_success() {
    let mut ok = vec![message_start(10, 0)];
    ok.extend(text_block(0, &["Done"]));
    ok.extend(ending("end_turn", 3));
    let server = Server::start(vec![
        Recorded::error(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}"#,
        )
        .with_header("retry-after", "0"),
        Recorded::error(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        Recorded::sse(&sse(&ok), 100),
    ])
    .await;
    let turn = collect(provider(&server.url).stream(request())).await.unwrap();
    assert_eq!(turn.text(), "Done");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[0].body, requests[2].body,
        "a retry repeats the same request"
    );
}

#[tokio::test]
async fn exhausted_retries_report_the_last_error_with_its_attempts() {
    let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let server = Server::start(vec![Recorded::error(529, overloaded); 3]).await;
    let err = collect(provider(&server.url).stream(request()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.status, err.attempts, err.retryable),
        (ErrorKind::Overloaded, Some(529), 3, true)
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_bad_request_is_not_retried_and_keeps_the_api_message() {
    let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: text content blocks must be non-empty"},"request_id":"req_011"}"#;
    let server = Server::start(vec![Recorded::error(400, body)]).await;
    let err = collect(provider(&server.url).stream(request()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RequestFailed);
    assert_eq!(err.kind.session_error_type(), "model_request_failed_error");
    assert!(!err.retryable);
    assert_eq!(err.status, Some(400));
    assert_eq!(err.provider_type.as_deref(), Some("invalid_request_error"));
    assert_eq!(err.message, "messages: text content blocks must be non-empty");
    assert_eq!(err.request_id.as_deref(), Some("req_err"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn billing_and_spend_limits_are_billing_errors_and_not_retried() {
    let server = Server::start(vec![
        Recorded::error(402, r#"{"type":"error","error":{"type":"billing_error","message":"Add credits"}}"#),
        Recorded::error(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}"#,
        ),
    ])
    .await;
    let provider = provider(&server.url);
    for _ in 0..2 {
        let err = collect(provider.stream(request())).await.unwrap_err();
        assert_eq!((err.kind, err.retryable), (ErrorKind::Billing, false), "{err}");
        assert_eq!(err.kind.session_error_type(), "billing_error");
    }
    assert_eq!(server.requests().len(), 2, "one request each");
}

#[tokio::test]
async fn x_should_retry_false_overrides_a_server_error() {
    let server = Server::start(vec![
        Recorded::error(
            500,
            r#"{"type":"error","error":{"type":"api_error","message":"Internal"}}"#,
        )
        .with_header("x-should-retry", "false"),
    ])
    .await;
    let err = collect(provider(&server.url).stream(request()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.attempts),
        (ErrorKind::RequestFailed, false, 1)
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_malformed_event_is_a_clear_error_not_a_panic() {
    let mut events = sse(&[message_start(10, 0)]);
    events.push_str(
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\n\n",
    );
    let server = Server::start(vec![Recorded::sse(&events, 13)]).await;
    let err = collect(provider(&server.url).stream(request()))
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.retryable), (ErrorKind::RequestFailed, false));
    assert!(
        err.message.starts_with("malformed content_block_delta event"),
        "{}",
        err.message
    );
    assert_eq!(server.requests().len(), 1, "malformed replies are not retried");

    // A delta for a block that never started is refused too.
    let orphan = sse(&[
        message_start(10, 0),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "x"}}),
        ),
    ]);
    let server = Server::start(vec![Recorded::sse(&orphan, 100)]).await;
    let err = collect(provider(&server.url).stream(request()))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("block 3, which never started"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_stream_cut_after_output_is_a_retryable_error_but_not_retried() {
    let mut events = vec![message_start(10, 0)];
    events.extend(text_block(0, &["Half a sent"]));
    let server = Server::start(vec![Recorded::sse(&sse(&events), 100)]).await;
    let (seen, err) = events_then_error(provider(&server.url).stream(request())).await;
    assert!(seen.contains(&ProviderEvent::TextComplete {
        index: 0,
        text: "Half a sent".into()
    }));
    let err = err.expect("an error");
    assert_eq!((err.kind, err.retryable), (ErrorKind::RequestFailed, true));
    assert!(err.message.contains("before message_stop"), "{}", err.message);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    let url = closed_port_url().await;
    let err = collect(provider(&url).stream(request())).await.unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.attempts),
        (ErrorKind::RequestFailed, true, 3)
    );
    assert!(err.message.starts_with("cannot connect"), "{}", err.message);
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output_or_errors() {
    let server = Server::start(vec![Recorded::error(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    )])
    .await;
    let provider = provider(&server.url);
    assert!(!format!("{provider:?}").contains(KEY));
    let err = collect(provider.stream(request())).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(KEY));
    assert!(!err.retryable);
}

#[tokio::test]
async fn a_stalled_stream_is_broken_off_by_the_idle_timeout() {
    // The server sends message_start, then nothing while keeping the connection open. No output was streamed,
    // so each stall is retried; the last one is reported.
    let stalled = || Recorded::sse(&sse(&[message_start(10, 0)]), 100).hanging();
    let server = Server::start(vec![stalled(), stalled(), stalled()]).await;
    let mut config = AnthropicConfig::new(ApiKey::new(KEY));
    config.base_url = server.url.clone();
    config.http = fast_http();
    config.http.timeouts.idle = std::time::Duration::from_millis(100);
    let provider = AnthropicProvider::new(config).unwrap();
    let err = collect(provider.stream(request())).await.unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.attempts),
        (ErrorKind::RequestFailed, true, 3)
    );
    assert!(err.message.contains("stalled"), "{}", err.message);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_server_that_never_answers_is_broken_off_by_the_response_timeout() {
    // The server accepts connections and never sends a status line.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let mut config = AnthropicConfig::new(ApiKey::new(KEY));
    config.base_url = url;
    config.http = fast_http();
    config.http.timeouts.response = std::time::Duration::from_millis(100);
    let provider = AnthropicProvider::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = collect(provider.stream(request())).await.unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.attempts),
        (ErrorKind::RequestFailed, true, 3)
    );
    assert!(
        err.message
            .contains("no response within 100ms (the model response timeout)"),
        "{}",
        err.message
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    held.abort();
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_is_handed_back_instead_of_waited_for() {
    let server = Server::start(vec![
        Recorded::error(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}"#,
        )
        .with_header("retry-after", "600"),
    ])
    .await;
    let err = collect(provider(&server.url).stream(request()))
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.retryable), (ErrorKind::RateLimited, true));
    assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(600)));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_thinking_budget_and_effort_are_sent_as_the_api_names_them() {
    let mut ok = vec![message_start(10, 0)];
    ok.extend(text_block(0, &["ok"]));
    ok.extend(ending("end_turn", 1));
    let server = Server::start(vec![Recorded::sse(&sse(&ok), 100)]).await;
    let mut req = request();
    req.thinking = Some(Thinking::Budget { budget_tokens: 2048 });
    req.effort = Some(corral_harness::providers::Effort::Xhigh);
    req.cache = CacheHints::default();
    collect(provider(&server.url).stream(req)).await.unwrap();
    let body = &server.requests()[0].body;
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(body["output_config"], json!({"effort": "xhigh"}));
    assert!(
        body["system"][0].get("cache_control").is_none(),
        "no hints, no breakpoints"
    );
}
