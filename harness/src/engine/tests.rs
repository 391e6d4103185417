//! Unit tests of the pure parts: scan, plan and context rebuild.

use std::collections::HashSet;
use std::sync::Arc;

use corral_api::events::{
    AgentMessage, AgentToolResult, AgentToolUse, ConfirmationResult, ContentBlock, Empty, Evaluation,
    EventBody, EventId, Permission, StopReason, SystemMessage, UserMessage, UserToolConfirmation,
};
use corral_session::Cursor;

use super::events;
use super::plan::{Limits, Step, plan};
use super::scan::scan;
use super::{compaction, context};
use crate::agent::ResolvedAgent;
use crate::log::LogEntry;
use crate::providers::{Block, Role, ScriptedProvider};

pub(super) fn agent(tools: serde_json::Value) -> ResolvedAgent {
    let spec =
        serde_json::from_value(serde_json::json!({"model": {"id": "m"}, "system": "sys", "tools": tools}))
            .unwrap();
    ResolvedAgent::new("a", spec, Arc::new(ScriptedProvider::parse("turns: []").unwrap()))
}

/// A log built in memory: each body gets the next cursor and a fresh id.
#[derive(Default)]
struct Log(Vec<LogEntry>);

impl Log {
    fn push(&mut self, body: EventBody) -> EventId {
        let id = EventId::generate();
        let cursor = Cursor::new(1000 + self.0.len() as u64, 0);
        self.0.push(LogEntry::new(cursor, id.clone(), body));
        id
    }
    fn new_event(&mut self, event: corral_session::NewEvent) -> EventId {
        self.push(event.body)
    }
    fn user(&mut self, text: &str) -> EventId {
        self.push(EventBody::UserMessage(UserMessage {
            content: vec![ContentBlock::text(text)],
        }))
    }
    fn message(&mut self, text: &str) -> EventId {
        self.push(EventBody::AgentMessage(AgentMessage {
            content: vec![ContentBlock::text(text)],
            session_thread_id: None,
        }))
    }
    fn tool_use(&mut self, name: &str, permission: Permission) -> EventId {
        self.push(EventBody::AgentToolUse(AgentToolUse {
            name: name.into(),
            input: serde_json::json!({"command": "x"}),
            evaluated_permission: Some(permission),
            evaluation: Some(if permission == Permission::Ask {
                Evaluation::AlwaysAsk
            } else {
                Evaluation::AlwaysAllow
            }),
            session_thread_id: None,
        }))
    }
    fn span_end(&mut self, start: &EventId, stop: &str) {
        self.new_event(events::span_end(start, Default::default(), false, Some(stop)));
    }
    fn result(&mut self, id: &EventId, text: &str) {
        self.push(EventBody::AgentToolResult(AgentToolResult {
            tool_use_id: id.to_string(),
            content: Some(vec![ContentBlock::text(text)]),
            is_error: Some(false),
            session_thread_id: None,
        }));
    }
}

fn step(log: &Log, agent: &ResolvedAgent, armed: &HashSet<EventId>) -> Step {
    plan(&scan(&log.0, &agent.tools), armed, &Limits::default())
}

fn appended_types(step: &Step) -> Vec<String> {
    match step {
        Step::Append { events, .. } => events.iter().map(|e| e.body.type_name().to_owned()).collect(),
        other => panic!("expected an append, got {other:?}"),
    }
}

#[test]
fn a_new_message_starts_a_turn_then_calls_the_model_then_ends_it() {
    let a = agent(serde_json::json!([]));
    let mut log = Log::default();
    assert!(matches!(step(&log, &a, &HashSet::new()), Step::Done));
    log.user("hi");
    assert_eq!(
        appended_types(&step(&log, &a, &HashSet::new())),
        ["session.status_running"]
    );
    log.new_event(events::running());
    assert!(matches!(
        step(&log, &a, &HashSet::new()),
        Step::Model { span: None, .. }
    ));
    let span = log.new_event(events::span_start(events::Purpose::Reply));
    assert!(
        matches!(step(&log, &a, &HashSet::new()), Step::Model { span: Some(_), .. }),
        "an open span is resumed"
    );
    log.message("hello");
    log.span_end(&span, "end_turn");
    assert_eq!(
        appended_types(&step(&log, &a, &HashSet::new())),
        ["session.status_idle"]
    );
    log.new_event(events::idle(StopReason::EndTurn));
    assert!(matches!(step(&log, &a, &HashSet::new()), Step::Done));
}

#[test]
fn a_tool_use_runs_only_where_it_was_armed_and_is_otherwise_recovered_never_run_again() {
    let a = agent(serde_json::json!([{"type": "agent_toolset_20260401"}]));
    let mut log = Log::default();
    log.user("go");
    log.new_event(events::running());
    let span = log.new_event(events::span_start(events::Purpose::Reply));
    let tool = log.tool_use("bash", Permission::Allow);
    log.span_end(&span, "tool_use");
    let armed = HashSet::from([tool.clone()]);
    assert!(matches!(step(&log, &a, &armed), Step::RunTool(t) if t.id == tool));
    assert!(
        matches!(step(&log, &a, &HashSet::new()), Step::RecoverTool(t) if t.id == tool),
        "another process asks the sandbox for the run the lost one started"
    );
    log.result(&tool, "ok");
    assert!(
        matches!(step(&log, &a, &HashSet::new()), Step::Model { span: None, .. }),
        "the model reads the result"
    );
}

#[test]
fn an_ask_tool_waits_for_confirmation_and_is_armed_once_by_a_running_marker() {
    let a = agent(
        serde_json::json!([{"type": "agent_toolset_20260401", "defaultConfig": {"permissionPolicy": "always_ask"}}]),
    );
    let mut log = Log::default();
    log.user("go");
    log.new_event(events::running());
    let span = log.new_event(events::span_start(events::Purpose::Reply));
    let tool = log.tool_use("bash", Permission::Ask);
    log.span_end(&span, "tool_use");
    let idle = step(&log, &a, &HashSet::new());
    match &idle {
        Step::Append { events, .. } => {
            let EventBody::SessionStatusIdle(i) = &events[0].body else {
                panic!()
            };
            assert_eq!(
                i.stop_reason,
                StopReason::RequiresAction {
                    event_ids: vec![tool.to_string()]
                }
            );
        }
        other => panic!("{other:?}"),
    }
    log.new_event(events::idle(StopReason::RequiresAction {
        event_ids: vec![tool.to_string()],
    }));
    assert!(
        matches!(step(&log, &a, &HashSet::new()), Step::Done),
        "the same idle is not repeated"
    );
    log.push(EventBody::UserToolConfirmation(UserToolConfirmation {
        tool_use_id: tool.to_string(),
        result: ConfirmationResult::Allow,
        deny_message: None,
        session_thread_id: None,
    }));
    match step(&log, &a, &HashSet::new()) {
        Step::Append { events, arm } => {
            assert_eq!(events[0].body.type_name(), "session.status_running");
            assert_eq!(arm, vec![tool.clone()]);
        }
        other => panic!("{other:?}"),
    }
    log.new_event(events::running());
    assert!(matches!(
        step(&log, &a, &HashSet::from([tool.clone()])),
        Step::RunTool(_)
    ));
    // Another process finds the marker but did not arm it: the call may have started, so it is not run again,
    // only recovered.
    assert!(matches!(step(&log, &a, &HashSet::new()), Step::RecoverTool(_)));
}

#[test]
fn the_context_pairs_tool_results_defers_mid_stream_messages_and_adds_system_messages() {
    let a = agent(serde_json::json!([{"type": "agent_toolset_20260401"}]));
    let mut log = Log::default();
    log.user("first");
    log.push(EventBody::SystemMessage(SystemMessage {
        content: vec![ContentBlock::text("be brief")],
    }));
    let span = log.new_event(events::span_start(events::Purpose::Reply));
    log.user("sent while streaming");
    log.new_event(
        crate::log::hidden::with_hidden(
            EventBody::AgentThinking(Empty {}),
            crate::log::hidden::fields([("thinking", "hmm".into()), ("signature", "sig".into())]),
        )
        .into(),
    );
    log.message("answer");
    let used = log.tool_use("bash", Permission::Allow);
    let orphan = log.tool_use("read", Permission::Allow);
    log.span_end(&span, "tool_use");
    log.result(&used, "out");
    let request = context::build(&log.0, log.0.len(), &a);
    assert_eq!(request.system.as_deref(), Some("sys\n\nbe brief"));
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
    assert_eq!(
        request.messages[1].content[0],
        Block::Thinking {
            thinking: "hmm".into(),
            signature: Some("sig".into())
        }
    );
    let last = &request.messages[2].content;
    assert!(
        matches!(&last[0], Block::ToolResult { tool_use_id, is_error: false, .. } if *tool_use_id == used.to_string())
    );
    assert!(
        matches!(&last[1], Block::ToolResult { tool_use_id, is_error: true, .. } if *tool_use_id == orphan.to_string())
    );
    assert_eq!(
        last[2],
        Block::Text {
            text: "sent while streaming".into()
        }
    );
    // The context of the span itself stops before it.
    let at_span = log.0.iter().position(|e| e.id == span).unwrap();
    assert_eq!(context::build(&log.0, at_span, &a).messages.len(), 1);
}

#[test]
fn compaction_cuts_at_the_current_turn_and_later_contexts_start_from_the_summary() {
    let a = agent(serde_json::json!([]));
    let mut log = Log::default();
    log.user(&"old question ".repeat(200));
    log.new_event(events::running());
    let span = log.new_event(events::span_start(events::Purpose::Reply));
    log.message(&"old answer ".repeat(200));
    log.span_end(&span, "end_turn");
    log.new_event(events::idle(StopReason::EndTurn));
    let turn = log.user("new question");
    log.new_event(events::running());
    let s = scan(&log.0, &a.tools);
    let cut = compaction::cut(&log.0, &s, &a, Some(100)).expect("over budget");
    assert_eq!(log.0[cut].id, turn);
    assert_eq!(compaction::cut(&log.0, &s, &a, Some(100_000)), None);
    let summary_request = compaction::request(&log.0, cut, &a);
    assert!(
        summary_request
            .messages
            .last()
            .unwrap()
            .content
            .iter()
            .any(|b| matches!(b, Block::Text { text } if text == compaction::PROMPT))
    );
    log.new_event(compaction::event("they asked old things", &turn));
    let request = context::build(&log.0, log.0.len(), &a);
    assert_eq!(request.messages.len(), 1);
    let Block::Text { text } = &request.messages[0].content[0] else {
        panic!()
    };
    assert!(text.starts_with(context::SUMMARY_PREFIX) && text.ends_with("they asked old things"));
    assert_eq!(
        request.messages[0].content[1],
        Block::Text {
            text: "new question".into()
        }
    );
    let s = scan(&log.0, &a.tools);
    assert_eq!(
        compaction::cut(&log.0, &s, &a, Some(1)),
        None,
        "nothing older is left to summarise"
    );
}

#[test]
fn an_interrupt_closes_the_open_span_answers_tool_uses_and_ends_the_turn() {
    let a = agent(serde_json::json!([{"type": "agent_toolset_20260401"}]));
    let mut log = Log::default();
    log.user("go");
    log.new_event(events::running());
    let _span = log.new_event(events::span_start(events::Purpose::Reply));
    log.push(EventBody::UserInterrupt(Default::default()));
    assert_eq!(
        appended_types(&step(&log, &a, &HashSet::new())),
        ["span.model_request_end", "session.status_idle"]
    );
}

#[test]
fn attached_files_reach_the_model_inline_and_what_cannot_is_a_note_saying_why() {
    use crate::attachments::{Attachment, Attachments, file_ids};
    let block = |json: serde_json::Value| serde_json::from_value::<ContentBlock>(json).unwrap();
    let mut log = Log::default();
    log.push(EventBody::UserMessage(UserMessage {
        content: vec![
            block(serde_json::json!({"type": "image", "source": {"type": "file", "file_id": "file_png"}})),
            block(serde_json::json!({"type": "document", "source": {"type": "file", "file_id": "file_pdf"}, "title": "Q3"})),
            block(serde_json::json!({"type": "document", "source": {"type": "file", "file_id": "file_txt"}})),
            block(serde_json::json!({"type": "image", "source": {"type": "file", "file_id": "file_gone"}})),
            block(serde_json::json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}})),
            block(serde_json::json!({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}})),
            block(serde_json::json!({"type": "image", "source": {"type": "url", "url": "https://example.com/blob"}})),
        ],
    }));
    assert_eq!(
        file_ids(&log.0),
        [
            "file_png",
            "file_pdf",
            "file_txt",
            "file_gone",
            "https://example.com/a.png",
            "https://example.com/blob"
        ]
    );
    let inline = |media_type: &str, data: &str| {
        Arc::new(Attachment::Inline {
            media_type: media_type.into(),
            data: data.into(),
        })
    };
    let files: Attachments = [
        ("file_png".to_owned(), inline("image/png", "iVBO")),
        ("file_pdf".to_owned(), inline("application/pdf", "JVBERi0")),
        (
            "file_txt".to_owned(),
            Arc::new(Attachment::Text("a,b\n1,2".into())),
        ),
        (
            "https://example.com/a.png".to_owned(),
            inline("image/png", "AQID"),
        ),
        (
            "https://example.com/blob".to_owned(),
            inline("application/octet-stream", "AA=="),
        ),
        (
            "file_gone".to_owned(),
            Arc::new(Attachment::Unavailable(
                "the file file_gone was deleted before the model read it".into(),
            )),
        ),
    ]
    .into_iter()
    .collect();
    let a = agent(serde_json::json!([]));
    let content = &context::build_with(&log.0, log.0.len(), &a, &files).messages[0].content;
    assert_eq!(
        content[0],
        Block::Image {
            media_type: "image/png".into(),
            data: "iVBO".into()
        }
    );
    assert_eq!(
        content[1],
        Block::Document {
            media_type: "application/pdf".into(),
            data: "JVBERi0".into(),
            title: Some("Q3".into())
        }
    );
    assert_eq!(
        content[2],
        Block::Text {
            text: "a,b\n1,2".into()
        }
    );
    assert!(
        matches!(&content[3], Block::Text { text } if text.contains("deleted before the model read it")),
        "{:?}",
        content[3]
    );
    assert!(matches!(&content[4], Block::Document { data, .. } if data == "JVBE"));
    assert_eq!(
        content[5],
        Block::Image {
            media_type: "image/png".into(),
            data: "AQID".into()
        },
        "an image from a URL reaches the model as the fetched bytes"
    );
    assert!(
        matches!(&content[6], Block::Text { text } if text.contains("application/octet-stream") && text.contains("does not take")),
        "a URL of a type the model does not take is a note, not a request the provider refuses: {:?}",
        content[6]
    );
    // Without the files (a compaction request), each stands as a note.
    let bare = &context::build(&log.0, log.0.len(), &a).messages[0].content;
    assert!(
        matches!(&bare[0], Block::Text { text } if text.contains("file_png")),
        "{:?}",
        bare[0]
    );
}
