//! Round trips of the API reference's example JSON and the client-event checks.

use serde_json::{Value, json};

use super::*;

/// Parses `value` as an event and checks that it serializes back to the same JSON.
fn round_trip(value: Value) -> Event {
    let event: Event = serde_json::from_value(value.clone()).expect("parses");
    let back = serde_json::to_value(&event).expect("serializes");
    assert_eq!(back, value, "round trip of {}", event.type_name());
    event
}

#[test]
fn reference_stream_examples_round_trip() {
    let running = round_trip(json!({
        "type": "session.status_running", "id": "sevt_002", "processed_at": "2026-05-01T10:00:00.120Z"
    }));
    assert!(matches!(running.body, EventBody::SessionStatusRunning(_)));
    let message = round_trip(json!({
        "type": "agent.message", "id": "sevt_005", "content": [{"type": "text", "text": "Hello!"}],
        "processed_at": "2026-05-01T10:00:02.010Z"
    }));
    let EventBody::AgentMessage(m) = &message.body else {
        panic!("{message:?}")
    };
    assert_eq!(m.content[0].as_text(), Some("Hello!"));
    let idle = round_trip(json!({
        "type": "session.status_idle", "id": "sevt_007", "stop_reason": {"type": "end_turn"},
        "processed_at": "2026-05-01T10:00:02.300Z"
    }));
    let EventBody::SessionStatusIdle(i) = &idle.body else {
        panic!("{idle:?}")
    };
    assert_eq!(i.stop_reason, StopReason::EndTurn);
    assert_eq!(
        idle.processed_at,
        Some("2026-05-01T10:00:02.3Z".parse().expect("time"))
    );
}

#[test]
fn send_echo_with_null_processed_at_round_trips() {
    let echo = round_trip(json!({
        "type": "user.message", "id": "sevt_1", "content": [{"type": "text", "text": "hi"}], "processed_at": null
    }));
    assert_eq!(echo.processed_at, None);
}

#[test]
fn every_known_type_round_trips() {
    let t = "2026-05-01T10:00:00.000Z";
    let events = [
        json!({"type": "user.message", "id": "e1", "processed_at": t, "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "document", "source": {"type": "file", "file_id": "file_1"}, "title": "T", "context": "C"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
            {"type": "redacted"}
        ]}),
        json!({"type": "user.interrupt", "id": "e2", "processed_at": t, "session_thread_id": "sthr_1"}),
        json!({"type": "user.tool_confirmation", "id": "e3", "processed_at": t, "tool_use_id": "sevt_9",
               "result": "deny", "deny_message": "no"}),
        json!({"type": "user.custom_tool_result", "id": "e4", "processed_at": t, "custom_tool_use_id": "sevt_8",
               "content": [{"type": "search_result", "source": "https://example.com", "title": "Ex",
                            "content": [{"type": "text", "text": "snippet"}], "citations": {"enabled": true}}],
               "is_error": false}),
        json!({"type": "user.tool_result", "id": "e5", "processed_at": t, "tool_use_id": "sevt_7",
               "content": [{"type": "text", "text": "ok"}], "is_error": true}),
        json!({"type": "system.message", "id": "e6", "processed_at": t, "content": [{"type": "text", "text": "be brief"}]}),
        json!({"type": "agent.thinking", "id": "e7", "processed_at": t}),
        json!({"type": "agent.tool_use", "id": "e8", "processed_at": t, "name": "bash",
               "input": {"command": "ls", "timeout": 1.5}, "evaluated_permission": "ask",
               "evaluation": {"type": "auto", "evaluated_permission": {"type": "ask", "reason_code": "high_risk"}}}),
        json!({"type": "agent.tool_use", "id": "e8b", "processed_at": t, "name": "read", "input": {},
               "evaluated_permission": "allow", "evaluation": {"type": "always_allow"}}),
        json!({"type": "agent.tool_result", "id": "e9", "processed_at": t, "tool_use_id": "e8",
               "content": [{"type": "text", "text": "a\nb"}]}),
        json!({"type": "agent.mcp_tool_use", "id": "e10", "processed_at": t, "mcp_server_name": "gh", "name": "search",
               "input": {"q": "x"}, "evaluated_permission": "allow", "evaluation": {"type": "always_allow"}}),
        json!({"type": "agent.mcp_tool_result", "id": "e11", "processed_at": t, "mcp_tool_use_id": "e10", "is_error": false}),
        json!({"type": "agent.custom_tool_use", "id": "e12", "processed_at": t, "name": "lookup", "input": {"k": [1, 2]}}),
        json!({"type": "agent.thread_context_compacted", "id": "e13", "processed_at": t}),
        json!({"type": "session.status_idle", "id": "e14", "processed_at": t,
               "stop_reason": {"type": "requires_action", "event_ids": ["e12"]}}),
        json!({"type": "session.status_idle", "id": "e14b", "processed_at": t, "stop_reason": {"type": "refusal"},
               "stop_details": {"type": "refusal", "category": "cyber", "explanation": "no"}}),
        json!({"type": "session.status_rescheduled", "id": "e15", "processed_at": t}),
        json!({"type": "session.status_terminated", "id": "e16", "processed_at": t}),
        json!({"type": "session.error", "id": "e17", "processed_at": t, "error": {
            "type": "mcp_connection_failed_error", "message": "down", "retry_status": {"type": "retrying"},
            "mcp_server_name": "gh"}}),
        json!({"type": "session.updated", "id": "e18", "processed_at": t, "title": null, "budget": null,
               "metadata": {"team": "a"}}),
        json!({"type": "session.usage", "id": "e19", "processed_at": t, "usage": {
            "input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2,
            "cache_creation": {"ephemeral_5m_input_tokens": 1}, "server_tool_use": {"web_search_requests": 0},
            "list_cost": {"amount": "12", "currency": "USD"}, "active_seconds": 3.5}}),
        json!({"type": "session.deleted", "id": "e20", "processed_at": t}),
        json!({"type": "span.model_request_start", "id": "e21", "processed_at": t}),
        json!({"type": "span.model_request_end", "id": "e22", "processed_at": t, "model_request_start_id": "e21",
               "model_usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 50, "speed": "standard"}, "is_error": false}),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for value in events {
        let event = round_trip(value);
        assert!(
            !matches!(event.body, EventBody::Other(_)),
            "{} parsed as unknown",
            event.type_name()
        );
        assert_eq!(
            event.body.event_type().map(EventType::name),
            Some(event.type_name()),
            "the table and the serde tag disagree"
        );
        seen.insert(event.type_name().to_owned());
    }
    seen.insert("agent.message".to_owned());
    seen.insert("session.status_running".to_owned());
    let known: std::collections::BTreeSet<_> = KNOWN_EVENT_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(seen, known);
}

#[test]
fn session_updated_tells_null_from_absent() {
    let event: Event = serde_json::from_value(json!({
        "type": "session.updated", "id": "e", "processed_at": "2026-05-01T10:00:00Z", "title": null
    }))
    .expect("parses");
    let EventBody::SessionUpdated(u) = event.body else {
        panic!()
    };
    assert_eq!(u.title, Some(None));
    assert_eq!(u.budget, None);
}

#[test]
fn unknown_event_types_are_kept_whole() {
    let value = json!({
        "type": "workflow_run.created", "id": "sevt_x", "processed_at": "2026-05-01T10:00:00.000Z",
        "workflow_run_id": "wr_1", "name": "n", "phases": [{"id": "p", "name": "P"}]
    });
    let event = round_trip(value);
    assert_eq!(event.type_name(), "workflow_run.created");
    let EventBody::Other(raw) = &event.body else {
        panic!("{event:?}")
    };
    assert_eq!(raw["workflow_run_id"], "wr_1");
}

#[test]
fn unknown_content_blocks_and_sources_are_kept() {
    let event = round_trip(json!({
        "type": "agent.message", "id": "e", "processed_at": "2026-05-01T10:00:00.000Z",
        "content": [{"type": "hologram", "depth": 3},
                    {"type": "image", "source": {"type": "s3", "bucket": "b"}}]
    }));
    let EventBody::AgentMessage(m) = &event.body else {
        panic!()
    };
    assert_eq!(m.content[0].type_name(), "hologram");
    let ContentBlock::Image(image) = &m.content[1] else {
        panic!("{:?}", m.content[1])
    };
    assert_eq!(image.source.type_name(), "s3");
}

#[test]
fn unknown_fields_of_known_events_are_tolerated() {
    let event: Event = serde_json::from_value(json!({
        "type": "agent.thinking", "id": "e", "processed_at": "2026-05-01T10:00:00+02:00", "future_field": 1
    }))
    .expect("parses");
    assert!(matches!(event.body, EventBody::AgentThinking(_)));
    assert_eq!(
        serde_json::to_value(&event).expect("json")["processed_at"],
        "2026-05-01T08:00:00.000Z"
    );
}

#[test]
fn generated_ids_are_prefixed_unique_and_ordered() {
    let ids: Vec<_> = (0..1000).map(|_| EventId::generate()).collect();
    assert!(ids.iter().all(|id| id.as_str().starts_with("sevt_")));
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids are unique and generated in sort order");
    assert!("".parse::<EventId>().is_err());
    assert!("sevt_ x".parse::<EventId>().is_err());
}

fn send(body: Value) -> Result<Vec<EventParam>, EventParamError> {
    parse_send_events(body.to_string().as_bytes())
}

fn field_of(body: Value) -> String {
    send(body).expect_err("rejected").field
}

#[test]
fn client_events_parse_into_bodies() {
    let params = send(json!({"events": [
        {"type": "user.message", "content": [{"type": "text", "text": "hi"}]},
        {"type": "system.message", "content": [{"type": "text", "text": "ctx"}]}
    ]}))
    .expect("valid");
    assert_eq!(params.len(), 2);
    let body = params[0].clone().into_body();
    assert_eq!(body.type_name(), "user.message");
    assert!(body.is_client_event());
    let event = Event::new(body);
    let json = serde_json::to_value(&event).expect("json");
    assert_eq!(json["processed_at"], Value::Null);
    assert_eq!(json["content"][0]["text"], "hi");
}

#[test]
fn client_event_errors_name_the_field() {
    assert_eq!(field_of(json!({})), "events");
    assert_eq!(field_of(json!({"events": {}})), "events");
    assert_eq!(field_of(json!({"events": []})), "events");
    assert_eq!(field_of(json!({"events": [{"content": []}]})), "events[0].type");
    assert_eq!(
        field_of(json!({"events": [{"type": "agent.message", "content": []}]})),
        "events[0].type"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.message"}]})),
        "events[0]"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.message", "content": []}]})),
        "events[0].content"
    );
    assert_eq!(
        field_of(
            json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "a"}, {"type": "text"}]}]})
        ),
        "events[0].content[1]"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": ""}]}]})),
        "events[0].content[0].text"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.message", "content": [{"type": "video"}]}]})),
        "events[0].content[0].type"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.message", "content": [
            {"type": "search_result", "source": "u", "title": "t", "content": []}]}]})),
        "events[0].content[0].type"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.message", "content": [
            {"type": "image", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]})),
        "events[0].content[0].source.type"
    );
    assert_eq!(
        field_of(
            json!({"events": [{"type": "user.tool_confirmation", "tool_use_id": "x", "result": "maybe"}]})
        ),
        "events[0].result"
    );
    assert_eq!(
        field_of(
            json!({"events": [{"type": "user.tool_confirmation", "tool_use_id": "x", "result": "allow",
                                     "deny_message": "no"}]})
        ),
        "events[0].deny_message"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.custom_tool_result", "custom_tool_use_id": ""}]})),
        "events[0].custom_tool_use_id"
    );
    assert_eq!(
        field_of(
            json!({"events": [{"type": "user.custom_tool_result", "custom_tool_use_id": "x", "content": [{"type": "redacted"}]}]})
        ),
        "events[0].content[0].type"
    );
}

#[test]
fn what_the_model_would_not_receive_is_refused_by_name() {
    // No self-hosted environments: nothing would read a user.tool_result.
    assert_eq!(
        field_of(json!({"events": [{"type": "user.tool_result", "tool_use_id": "x"}]})),
        "events[0].type"
    );
    // A URL the harness could not fetch is refused by name; inline data of a type no model takes too.
    for (block, field) in [
        (
            json!({"type": "image", "source": {"type": "url", "url": "ftp://example.com/a.png"}}),
            "source.url",
        ),
        (
            json!({"type": "document", "source": {"type": "url", "url": "https://user:pw@example.com/a.pdf"}}),
            "source.url",
        ),
        (
            json!({"type": "document", "source": {"type": "url", "url": "https:///a.pdf"}}),
            "source.url",
        ),
        (
            json!({"type": "image", "source": {"type": "url", "url": "https://example.com/a b.png"}}),
            "source.url",
        ),
        (
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "AA=="}}),
            "source.media_type",
        ),
        (
            json!({"type": "document", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}),
            "source.media_type",
        ),
    ] {
        let body = json!({"events": [{"type": "user.message", "content": [block]}]});
        assert_eq!(field_of(body), format!("events[0].content[0].{field}"));
    }
    send(json!({"events": [{"type": "user.message", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}, "title": "t"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AA=="}},
        {"type": "document", "source": {"type": "file", "file_id": "file_2"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "document", "source": {"type": "url", "url": "http://docs.example.com:8080/a.pdf?v=1"}}
    ]}]}))
    .expect("inline images, PDFs, text documents, files and URLs reach the model");
}

#[test]
fn system_message_must_be_last_and_follow_its_event() {
    let sys = json!({"type": "system.message", "content": [{"type": "text", "text": "s"}]});
    let msg = json!({"type": "user.message", "content": [{"type": "text", "text": "m"}]});
    assert_eq!(field_of(json!({"events": [sys.clone()]})), "events[0].type");
    assert_eq!(
        field_of(json!({"events": [msg.clone(), sys.clone(), msg.clone()]})),
        "events[1].type"
    );
    assert_eq!(
        field_of(json!({"events": [{"type": "user.interrupt"}, sys.clone()]})),
        "events[1].type"
    );
    assert_eq!(
        field_of(
            json!({"events": [msg.clone(), {"type": "system.message", "content": [{"type": "image",
            "source": {"type": "url", "url": "u"}}]}]})
        ),
        "events[1].content[0].type"
    );
    send(json!({"events": [{"type": "user.custom_tool_result", "custom_tool_use_id": "t"}, sys]}))
        .expect("valid");
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    for body in [
        &b""[..],
        b"null",
        b"[1]",
        b"{\"events\": [1]}",
        b"\xff\xfe",
        b"{\"events\": [{\"type\": 3}]}",
    ] {
        assert!(parse_send_events(body).is_err(), "{body:?}");
    }
}

#[test]
fn malformed_known_events_in_a_log_are_kept_raw() {
    let value =
        json!({"type": "agent.tool_use", "id": "e", "processed_at": "2026-05-01T10:00:00.000Z", "input": 3});
    let event = round_trip(value);
    assert_eq!(event.type_name(), "agent.tool_use");
    assert!(matches!(event.body, EventBody::Other(_)));
    assert!(
        serde_json::from_value::<Event>(json!({"type": "agent.thinking"})).is_err(),
        "id is required"
    );
}

#[test]
fn client_events_with_fields_corral_does_not_know_are_refused_by_name() {
    let refused = |body: Value| send(body).expect_err("refused").to_string();
    assert_eq!(
        refused(
            json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "a"}], "colour": 1}]})
        ),
        "events[0].colour: Extra inputs are not permitted"
    );
    assert_eq!(
        refused(
            json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "a", "bold": true}]}]})
        ),
        "events[0].content[0].bold: Extra inputs are not permitted"
    );
    assert_eq!(
        refused(json!({"events": [{"type": "user.interrupt", "reason": "x"}]})),
        "events[0].reason: Extra inputs are not permitted"
    );
    // What the API defines passes, and a field sent as null is the same as one left out.
    send(json!({"events": [
        {"type": "user.message", "content": [{"type": "text", "text": "a"}]},
        {"type": "user.interrupt", "session_thread_id": null},
    ]}))
    .expect("known fields pass");
    send(json!({"events": [{"type": "user.tool_confirmation", "tool_use_id": "sevt_1", "result": "deny", "deny_message": "no"}]}))
        .expect("a denial with its message passes");
}
