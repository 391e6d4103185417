//! The OpenAI-compatible provider against recorded chat completion streams (OpenAI, vLLM, Ollama, LiteLLM
//! shapes) served by a real HTTP server on loopback.
#![allow(clippy::unwrap_used)] // a test crate: helpers outside #[test] fns unwrap too

#[path = "providers_support.rs"]
mod support;

use corral_harness::providers::{
    ApiKey, Dialect, ErrorKind, Message, ModelRequest, OpenAiConfig, OpenAiProvider, Provider, ProviderEvent,
    StopReason, ToolCall, ToolDefinition, ToolInput, Usage, collect,
};
use serde_json::{Value, json};
use support::{Recorded, Server, drain, events_then_error, fast_http};

const KEY: &str = "sk-openai-test-secret";

fn provider(base_url: &str, key: Option<&str>) -> OpenAiProvider {
    let mut config = OpenAiConfig::new(format!("{base_url}/v1"), key.map(ApiKey::new));
    config.http = fast_http();
    OpenAiProvider::new(config).unwrap()
}

fn request() -> ModelRequest {
    let mut request = ModelRequest::new("gpt-x", 4096, vec![Message::user_text("Summarize README.md")]);
    request.system = Some("You are a coding agent.".into());
    request.tools = vec![ToolDefinition {
        name: "read_file".into(),
        description: "Read a file from the workspace.".into(),
        input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }];
    request
}

/// A chunk with one choice carrying `delta`, and `finish_reason`.
fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-9xA", "object": "chat.completion.chunk", "created": 1760000000, "model": "gpt-x",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null})
}

/// `data:` events for each chunk, then `data: [DONE]` when `done`.
fn sse(chunks: &[Value], done: bool) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    body
}

fn events(items: Vec<Result<ProviderEvent, corral_harness::providers::ProviderError>>) -> Vec<ProviderEvent> {
    items.into_iter().map(Result::unwrap).collect()
}

#[tokio::test]
async fn text_then_a_tool_call_with_split_arguments_and_cached_usage() {
    // The documented worked example.
    let body = sse(
        &[
            chunk(json!({"role": "assistant", "content": "", "refusal": null}), None),
            chunk(json!({"content": "I'll open"}), None),
            chunk(json!({"content": " the file first."}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_7Yk2", "type": "function",
                                       "function": {"name": "read_file", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"README.md\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            json!({"id": "chatcmpl-9xA", "object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": 2242, "completion_tokens": 31, "total_tokens": 2273,
                             "prompt_tokens_details": {"cached_tokens": 1792, "audio_tokens": 0},
                             "completion_tokens_details": {"reasoning_tokens": 0}}}),
        ],
        true,
    );
    let server = Server::start(vec![Recorded::sse(&body, 11)]).await;
    let got = events(drain(provider(&server.url, Some(KEY)).stream(request())).await);
    let expected = vec![
        ProviderEvent::TextDelta {
            index: 0,
            text: "I'll open".into(),
        },
        ProviderEvent::TextDelta {
            index: 0,
            text: " the file first.".into(),
        },
        ProviderEvent::TextComplete {
            index: 0,
            text: "I'll open the file first.".into(),
        },
        ProviderEvent::ToolCallStart {
            index: 1,
            id: "call_7Yk2".into(),
            name: "read_file".into(),
        },
        ProviderEvent::ToolCallDelta {
            index: 1,
            json: "{\"path\":".into(),
        },
        ProviderEvent::ToolCallDelta {
            index: 1,
            json: "\"README.md\"}".into(),
        },
        ProviderEvent::ToolCallComplete {
            index: 1,
            call: ToolCall {
                id: "call_7Yk2".into(),
                name: "read_file".into(),
                input: ToolInput::Valid(json!({"path": "README.md"})),
            },
        },
        ProviderEvent::Usage(Usage {
            input_tokens: 450,
            output_tokens: 31,
            cache_read_input_tokens: 1792,
            cache_creation_input_tokens: 0,
        }),
        ProviderEvent::Stop {
            reason: StopReason::ToolUse,
            raw: Some("tool_calls".into()),
        },
    ];
    assert_eq!(got, expected);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), format!("Bearer {KEY}"));
    assert_eq!(sent.body["stream"], json!(true));
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        sent.body["max_tokens"],
        json!(4096),
        "compatible servers get max_tokens"
    );
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "You are a coding agent."})
    );
    assert_eq!(
        sent.body["messages"][1],
        json!({"role": "user", "content": "Summarize README.md"})
    );
    assert_eq!(sent.body["tools"][0]["function"]["name"], json!("read_file"));
}

#[tokio::test]
async fn vllm_style_reasoning_repeated_and_missing_ids_no_usage_and_no_done() {
    // Reasoning under both names; a server that repeats id and name on every fragment, one that sends none, one
    // that reuses an id; `finish_reason: stop` despite tool calls; no usage; the server closes without [DONE].
    let body = sse(
        &[
            chunk(json!({"role": "assistant", "reasoning_content": "Need "}), None),
            chunk(json!({"role": "assistant", "reasoning": "two files."}), None),
            chunk(json!({"content": "Reading both."}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_X", "type": "function",
                                       "function": {"name": "read_file", "arguments": "{\"pa"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_X", "type": "function",
                                       "function": {"name": "read_file", "arguments": "th\": \"a.md\"}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "", "function": {"name": "read_file", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"path\": \"b.md\"}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 2, "id": "call_X", "function": {"name": "read_file",
                                                                                 "arguments": ""}}]}),
                None,
            ),
            chunk(json!({}), Some("stop")),
        ],
        false,
    );
    let server = Server::start(vec![Recorded::sse(&body, 17)]).await;
    let got = events(drain(provider(&server.url, None).stream(request())).await);
    assert_eq!(
        server.requests()[0].header("authorization"),
        "",
        "no key, no header"
    );

    assert_eq!(
        &got[..3],
        &[
            ProviderEvent::ThinkingStart { index: 0 },
            ProviderEvent::ThinkingDelta {
                index: 0,
                text: "Need ".into()
            },
            ProviderEvent::ThinkingDelta {
                index: 0,
                text: "two files.".into()
            },
        ]
    );
    assert!(got.contains(&ProviderEvent::ThinkingComplete {
        index: 0,
        thinking: "Need two files.".into(),
        signature: None
    }));
    assert!(got.contains(&ProviderEvent::TextComplete {
        index: 1,
        text: "Reading both.".into()
    }));
    let calls: Vec<&ToolCall> = got
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::ToolCallComplete { call, .. } => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].id, "call_X");
    assert_eq!(calls[0].name, "read_file", "a repeated name is taken once");
    assert_eq!(calls[0].input, ToolInput::Valid(json!({"path": "a.md"})));
    assert!(
        calls[1].id.starts_with("call_") && calls[1].id.len() > 10,
        "synthesized: {}",
        calls[1].id
    );
    assert_eq!(calls[1].input, ToolInput::Valid(json!({"path": "b.md"})));
    assert!(
        calls[2].id != "call_X" && calls[2].id != calls[1].id,
        "a reused id is replaced: {}",
        calls[2].id
    );
    assert_eq!(
        calls[2].input,
        ToolInput::Valid(json!({})),
        "empty arguments mean no arguments"
    );
    assert!(
        !got.iter().any(|e| matches!(e, ProviderEvent::Usage(_))),
        "no usage reported, none invented"
    );
    assert_eq!(
        got.last(),
        Some(&ProviderEvent::Stop {
            reason: StopReason::ToolUse,
            raw: Some("stop".into())
        })
    );
}

#[tokio::test]
async fn old_ollama_whole_calls_without_index_and_litellm_usage_with_choices() {
    let body = sse(
        &[
            chunk(
                json!({"role": "assistant", "content": "", "tool_calls": [
                    {"id": "", "function": {"name": "read_file", "arguments": {"path": "a.md"}}}]}),
                None,
            ),
            chunk(
                json!({"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "read_file", "arguments": "\"{\\\"path\\\": \\\"b.md\\\"}\""}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            json!({"id": "x", "choices": [{"index": 0, "delta": {}}],
                   "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}}),
        ],
        true,
    );
    let server = Server::start(vec![Recorded::sse(&body, 1000)]).await;
    let turn = collect(provider(&server.url, None).stream(request()))
        .await
        .unwrap();
    assert_eq!(turn.tool_calls.len(), 2, "{turn:?}");
    assert_eq!(
        turn.tool_calls[0].input,
        ToolInput::Valid(json!({"path": "a.md"})),
        "object arguments"
    );
    assert_eq!(
        turn.tool_calls[1].input,
        ToolInput::Valid(json!({"path": "b.md"})),
        "double-encoded arguments"
    );
    assert_ne!(turn.tool_calls[0].id, turn.tool_calls[1].id);
    assert_eq!(turn.stop_reason, StopReason::ToolUse);
    assert_eq!(
        turn.usage,
        Some(Usage {
            input_tokens: 50,
            output_tokens: 7,
            ..Usage::default()
        })
    );
}

#[tokio::test]
async fn invalid_tool_arguments_reach_the_caller_as_invalid_input() {
    let body = sse(
        &[
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "read_file",
                                                                                 "arguments": "{\"path\": "}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let server = Server::start(vec![Recorded::sse(&body, 1000)]).await;
    let turn = collect(provider(&server.url, None).stream(request()))
        .await
        .unwrap();
    match &turn.tool_calls[0].input {
        ToolInput::Invalid { raw, error } => {
            assert_eq!(raw, "{\"path\": ");
            assert!(!error.is_empty());
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn finish_reasons_map_to_neutral_ones() {
    let cases = [
        ("stop", StopReason::EndTurn),
        ("length", StopReason::MaxTokens),
        ("content_filter", StopReason::Refusal),
    ];
    let recordings = cases
        .iter()
        .map(|(raw, _)| Recorded::sse(&sse(&[chunk(json!({"content": "Hi"}), Some(raw))], true), 1000))
        .collect();
    let server = Server::start(recordings).await;
    let provider = provider(&server.url, None);
    for (raw, reason) in cases {
        let turn = collect(provider.stream(request())).await.unwrap();
        assert_eq!(
            (turn.stop_reason, turn.raw_stop_reason.as_deref()),
            (reason, Some(raw))
        );
        assert_eq!(turn.text(), "Hi");
    }
}

#[tokio::test]
async fn an_error_chunk_mid_stream_ends_the_stream_without_a_retry() {
    let body = sse(
        &[
            chunk(json!({"content": "Hel"}), None),
            json!({"error": {"message": "The server had an error", "type": "server_error", "param": null,
                             "code": null}}),
        ],
        false,
    );
    let server = Server::start(vec![Recorded::sse(&body, 1000)]).await;
    let (seen, err) = events_then_error(provider(&server.url, None).stream(request())).await;
    assert_eq!(
        seen,
        vec![ProviderEvent::TextDelta {
            index: 0,
            text: "Hel".into()
        }]
    );
    let err = err.expect("an error");
    assert_eq!(
        (err.kind, err.retryable, err.status),
        (ErrorKind::RequestFailed, true, None)
    );
    assert_eq!(err.message, "The server had an error");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn rate_limited_then_success_is_retried() {
    let ok = sse(&[chunk(json!({"content": "Done"}), Some("stop"))], true);
    let server = Server::start(vec![
        Recorded::error(
            429,
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        )
        .with_header("retry-after-ms", "5"),
        Recorded::sse(&ok, 1000),
    ])
    .await;
    let turn = collect(provider(&server.url, None).stream(request()))
        .await
        .unwrap();
    assert_eq!(turn.text(), "Done");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn quota_exhaustion_is_billing_and_not_retried() {
    let server = Server::start(vec![Recorded::error(
        429,
        r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
    )])
    .await;
    let err = collect(provider(&server.url, None).stream(request()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.status),
        (ErrorKind::Billing, false, Some(429))
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_bad_request_in_the_flat_vllm_envelope_is_mapped_and_not_retried() {
    let server = Server::start(vec![Recorded::error(
        400,
        r#"{"object":"error","message":"This model's maximum context length is 8192 tokens","type":"BadRequestError","param":null,"code":400}"#,
    )])
    .await;
    let err = collect(provider(&server.url, None).stream(request()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.status),
        (ErrorKind::RequestFailed, false, Some(400))
    );
    assert_eq!(err.message, "This model's maximum context length is 8192 tokens");
    assert_eq!(err.provider_type.as_deref(), Some("BadRequestError"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_non_json_error_body_still_gives_a_clear_error() {
    let server = Server::start(vec![
        Recorded::error(502, "<html>Bad Gateway</html>"),
        Recorded::error(502, "<html>Bad Gateway</html>"),
        Recorded::error(502, "<html>Bad Gateway</html>"),
    ])
    .await;
    let err = collect(provider(&server.url, None).stream(request()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.attempts),
        (ErrorKind::RequestFailed, true, 3)
    );
    assert!(err.message.contains("Bad Gateway"), "{}", err.message);
}

#[tokio::test]
async fn malformed_chunks_are_clear_errors_not_panics() {
    for (body, expect) in [
        ("data: {\"choices\": [{\"delta\": \n\n", "malformed chunk"),
        ("data: {\"choices\": \"not a list\"}\n\n", "malformed chunk"),
        ("data: [1, 2]\n\n", "malformed chunk"),
    ] {
        let server = Server::start(vec![Recorded::sse(body, 5)]).await;
        let err = collect(provider(&server.url, None).stream(request()))
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.retryable),
            (ErrorKind::RequestFailed, false),
            "{body}"
        );
        assert!(err.message.starts_with(expect), "{body}: {}", err.message);
        assert_eq!(server.requests().len(), 1);
    }
}

#[tokio::test]
async fn a_stream_that_ends_before_any_finish_reason_is_an_error() {
    let body = sse(&[chunk(json!({"content": "Trunc"}), None)], false);
    let server = Server::start(vec![Recorded::sse(&body, 1000)]).await;
    let (seen, err) = events_then_error(provider(&server.url, None).stream(request())).await;
    assert_eq!(seen.len(), 1);
    let err = err.expect("an error");
    assert!(
        err.retryable && err.message.contains("before any finish_reason"),
        "{err}"
    );
}

#[tokio::test]
async fn the_openai_dialect_uses_max_completion_tokens_and_reasoning_effort() {
    let server = Server::start(vec![Recorded::sse(
        &sse(&[chunk(json!({"content": "ok"}), Some("stop"))], true),
        100,
    )])
    .await;
    let mut config = OpenAiConfig::new(format!("{}/v1", server.url), Some(ApiKey::new(KEY)));
    config.dialect = Dialect::openai();
    let provider = OpenAiProvider::new(config).unwrap();
    let mut req = request();
    req.effort = Some(corral_harness::providers::Effort::Low);
    collect(provider.stream(req)).await.unwrap();
    let sent = &server.requests()[0];
    assert_eq!(sent.body["max_completion_tokens"], json!(4096));
    assert!(sent.body.get("max_tokens").is_none());
    assert_eq!(sent.body["reasoning_effort"], json!("low"));
    assert!(!format!("{provider:?}").contains(KEY));
}
