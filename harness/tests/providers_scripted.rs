//! The scripted provider: replaying the example script, determinism across retries, error injection, bad scripts.
#![allow(clippy::unwrap_used)] // a test crate: helpers outside #[test] fns unwrap too

#[path = "providers_support.rs"]
mod support;

use corral_harness::providers::scripted::ScriptLoadError;
use corral_harness::providers::{
    Block, ErrorKind, Message, ModelRequest, Provider, ProviderEvent, ProviderInputs, Role, ScriptedProvider,
    StopReason, ToolInput, Usage, collect,
};
use serde_json::json;
use support::{drain, events_then_error};

const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/scripts/hello-tool.yaml");

fn first_request() -> ModelRequest {
    ModelRequest::new(
        "scripted",
        1024,
        vec![Message::user_text("Say hello and check the sandbox.")],
    )
}

#[tokio::test]
async fn the_example_script_says_hello_calls_bash_then_sums_up() {
    let provider = ScriptedProvider::from_file(HELLO).unwrap();

    let first = collect(provider.stream(first_request())).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert!(first.text().starts_with("Hello!"), "{}", first.text());
    assert!(matches!(first.content[0], Block::Thinking { .. }));
    assert_eq!(first.tool_calls.len(), 1);
    let call = &first.tool_calls[0];
    assert_eq!(call.name, "bash");
    assert_eq!(
        call.input,
        ToolInput::Valid(json!({"command": "echo hello > /tmp/x && cat /tmp/x"}))
    );
    assert_eq!(first.usage.map(|u| u.output_tokens), Some(38));

    // The harness appends the reply and the tool result, then calls again: turn 1 answers.
    let mut request = first_request();
    request.messages.push(first.message());
    request.messages.push(Message {
        role: Role::User,
        content: vec![Block::ToolResult {
            tool_use_id: call.id.clone(),
            content: vec![Block::Text {
                text: "hello\n".into(),
            }],
            is_error: false,
        }],
    });
    let second = collect(provider.stream(request.clone())).await.unwrap();
    assert_eq!(second.stop_reason, StopReason::EndTurn);
    assert!(second.tool_calls.is_empty());
    assert!(second.text().contains("/tmp/x"), "{}", second.text());
    assert_eq!(
        second.usage,
        Some(Usage {
            input_tokens: 480,
            output_tokens: 27,
            cache_read_input_tokens: 400,
            cache_creation_input_tokens: 0
        })
    );

    // A third call is past the script: a clear error, not a panic or a made-up reply.
    request.messages.push(second.message());
    request.messages.push(Message::user_text("And now?"));
    let err = collect(provider.stream(request)).await.unwrap_err();
    assert_eq!((err.kind, err.retryable), (ErrorKind::RequestFailed, false));
    assert!(err.message.contains("the script has 2 turns"), "{}", err.message);
}

#[tokio::test]
async fn a_retried_call_replays_the_same_reply_even_from_a_fresh_provider() {
    // A crash-restarted harness has a new provider and the same conversation: it must get the same events,
    // tool-call ids included, because the step comes from the conversation, not from provider state.
    let events = |provider: ScriptedProvider| async move {
        drain(provider.stream(first_request()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let provider = ScriptedProvider::from_file(HELLO).unwrap();
    let once = events(provider.clone()).await;
    let again = events(provider).await;
    let fresh = events(ScriptedProvider::from_file(HELLO).unwrap()).await;
    assert_eq!(once, again);
    assert_eq!(once, fresh);
    assert_eq!(
        once.iter()
            .filter(|e| matches!(e, ProviderEvent::TextDelta { .. }))
            .count(),
        3,
        "each chunk is a delta"
    );
    assert!(matches!(
        once.last(),
        Some(ProviderEvent::Stop {
            reason: StopReason::ToolUse,
            ..
        })
    ));
}

#[tokio::test]
async fn injected_errors_fire_after_the_given_chunks_and_only_the_given_times() {
    let provider = ScriptedProvider::parse(
        r#"
turns:
  - content:
      - text: ["one", "two", "three"]
    error: { type: model_overloaded_error, message: "busy", after_chunks: 2, times: 1 }
"#,
    )
    .unwrap();
    let (seen, err) = events_then_error(provider.stream(first_request())).await;
    assert_eq!(
        seen,
        vec![
            ProviderEvent::TextDelta {
                index: 0,
                text: "one".into()
            },
            ProviderEvent::TextDelta {
                index: 0,
                text: "two".into()
            },
        ]
    );
    let err = err.expect("the injected error");
    assert_eq!(
        (err.kind, err.retryable, err.message.as_str()),
        (ErrorKind::Overloaded, true, "busy")
    );

    // `times: 1`: the second call of the same turn plays through.
    let turn = collect(provider.stream(first_request())).await.unwrap();
    assert_eq!(turn.text(), "onetwothree");
    assert_eq!(turn.stop_reason, StopReason::EndTurn);
}

#[tokio::test]
async fn an_error_without_times_fails_every_call_and_json_scripts_load_too() {
    let provider = ScriptedProvider::parse(
        r#"{"turns": [{"content": [{"text": "never"}], "error": {"type": "billing_error"}}]}"#,
    )
    .unwrap();
    for _ in 0..3 {
        let (seen, err) = events_then_error(provider.stream(first_request())).await;
        assert!(seen.is_empty(), "after_chunks defaults to 0: no output");
        let err = err.expect("an error");
        assert_eq!((err.kind, err.retryable), (ErrorKind::Billing, false));
        assert_eq!(err.kind.session_error_type(), "billing_error");
    }
}

#[tokio::test]
async fn the_step_counts_assistant_messages_in_the_request() {
    let provider = ScriptedProvider::parse(
        r#"
turns:
  - content: [{text: "first"}]
  - content: [{text: "second"}]
    stop_reason: max_tokens
"#,
    )
    .unwrap();
    let mut request = first_request();
    request
        .messages
        .push(Message::assistant_text("whatever came before"));
    request.messages.push(Message::user_text("go on"));
    let turn = collect(provider.stream(request)).await.unwrap();
    assert_eq!(turn.text(), "second");
    assert_eq!(turn.stop_reason, StopReason::MaxTokens);
    assert!(
        turn.usage
            .is_some_and(|u| u.input_tokens > 0 && u.output_tokens > 0),
        "usage is estimated"
    );
}

#[test]
fn bad_scripts_are_refused_with_the_reason() {
    let typo = ScriptedProvider::parse("turns:\n  - content: [{text: hi}]\n    dealy_ms: 5\n").unwrap_err();
    assert!(matches!(typo, ScriptLoadError::Parse(_)));
    assert!(typo.to_string().contains("dealy_ms"), "{typo}");

    let bad_kind = ScriptedProvider::parse("turns:\n  - error: {type: oops}\n").unwrap_err();
    assert!(bad_kind.to_string().contains("oops"), "{bad_kind}");

    let two_keys = ScriptedProvider::parse("turns:\n  - content: [{text: hi, thinking: hm}]\n").unwrap_err();
    assert!(two_keys.to_string().contains("exactly one of"), "{two_keys}");

    assert!(
        ScriptedProvider::parse("turns: []\n")
            .unwrap()
            .script()
            .turns
            .is_empty()
    );

    let missing = ScriptedProvider::from_file("/nonexistent/script.yaml").unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/script.yaml"),
        "{missing}"
    );
}

#[test]
fn an_agents_provider_settings_build_the_matching_provider() {
    use corral_api::agent::{ProviderConfig, ProviderKind};
    let scripted = ProviderConfig {
        kind: ProviderKind::Scripted,
        ..ProviderConfig::default()
    };
    let inputs = ProviderInputs {
        script: Some(std::fs::read_to_string(HELLO).unwrap()),
        ..Default::default()
    };
    assert_eq!(
        corral_harness::providers::build(&scripted, inputs)
            .unwrap()
            .name(),
        "scripted"
    );

    let anthropic = ProviderConfig::default();
    let err = corral_harness::providers::build(&anthropic, ProviderInputs::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("needs an API key"), "{err}");

    let openai = ProviderConfig {
        kind: ProviderKind::Openai,
        base_url: Some("ftp://nope".into()),
        ..ProviderConfig::default()
    };
    let err = corral_harness::providers::build(&openai, ProviderInputs::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("ftp://nope"), "{err}");
}

#[tokio::test]
async fn a_turn_expecting_text_in_the_system_prompt_fails_without_it_and_plays_with_it() {
    let provider = ScriptedProvider::parse(
        "turns:\n  - expect_system: [\"csv-report\"]\n    content:\n      - text: \"seen\"\n",
    )
    .unwrap();
    let err = collect(provider.stream(first_request())).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RequestFailed);
    assert!(!err.retryable);
    assert!(err.message.contains("\"csv-report\""), "{}", err.message);
    let mut request = first_request();
    request.system = Some("# Skills\n- csv-report (...): reports".into());
    let reply = collect(provider.stream(request)).await.unwrap();
    assert_eq!(reply.text(), "seen");
}

#[tokio::test]
async fn a_turn_expecting_a_media_type_fails_without_such_a_block() {
    let provider = ScriptedProvider::parse(
        "turns:\n  - expect_media: [\"application/pdf\"]\n    content:\n      - text: \"read\"\n",
    )
    .unwrap();
    let err = collect(provider.stream(first_request())).await.unwrap_err();
    assert!(err.message.contains("application/pdf"), "{}", err.message);
    let mut request = first_request();
    request.messages[0].content.push(Block::Document {
        media_type: "application/pdf".into(),
        data: "JVBERi0=".into(),
        title: None,
    });
    assert_eq!(collect(provider.stream(request)).await.unwrap().text(), "read");
}
