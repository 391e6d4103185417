//! Tool permissions: an `always_ask` call waits for the client's confirmation, across a restart of the harness,
//! runs when allowed, and tells the model the denial when denied. Real redis-server, real sandbox daemon.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "engine_support.rs"]
mod support;

use corral_api::events::{
    ConfirmationResult, EventBody, EventId, Permission, StopReason, UserToolConfirmation,
};
use corral_harness::engine::{Outcome, context};
use corral_harness::providers::{Block, Role};
use support::{NS, harness, strs, texts};

/// The built-in toolset asks before `bash` (this continues the toolset entry of the test manifest).
const ASK_BASH: &str = "      configs: [{name: bash, permissionPolicy: always_ask}]\n";

fn script(marker: &std::path::Path) -> String {
    format!(
        "turns:\n  - content: [{{text: \"I need to run it.\"}}, {{tool_use: {{name: bash, input: {{command: \
         \"touch {} && echo ran\"}}}}}}]\n  - content: [{{text: \"done\"}}]\n",
        marker.display()
    )
}

fn marker() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("corral-ask-{}", corral_sandbox_protocol::random_hex(6)))
}

/// Runs the first turn and returns the id of the `agent.tool_use` waiting for confirmation.
async fn wait_for_confirmation(h: &support::Harness) -> EventId {
    h.say("s", "run it").await;
    assert_eq!(h.run("s").await, Outcome::Idle);
    let entries = h.entries("s").await;
    let tool = entries
        .iter()
        .find(|e| e.type_name() == "agent.tool_use")
        .expect("a tool use");
    let EventBody::AgentToolUse(body) = &tool.body else {
        unreachable!()
    };
    assert_eq!(body.evaluated_permission, Some(Permission::Ask));
    let EventBody::SessionStatusIdle(idle) = &entries.last().unwrap().body else {
        panic!("the session is not idle: {:?}", h.types("s").await)
    };
    assert_eq!(
        idle.stop_reason,
        StopReason::RequiresAction {
            event_ids: vec![tool.id.to_string()]
        }
    );
    tool.id.clone()
}

async fn confirm(h: &support::Harness, tool: &EventId, result: ConfirmationResult, message: Option<&str>) {
    h.store
        .session(NS, "s")
        .append_user([EventBody::UserToolConfirmation(UserToolConfirmation {
            tool_use_id: tool.to_string(),
            result,
            deny_message: message.map(str::to_owned),
            session_thread_id: None,
        })])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_always_ask_call_waits_across_a_harness_restart_and_runs_when_allowed() {
    let marker = marker();
    let mut h = harness(&script(&marker), ASK_BASH).await;
    let tool = wait_for_confirmation(&h).await;
    assert!(!marker.exists(), "the call ran before it was confirmed");

    // The harness goes away while the session waits; a new one starts on the same log.
    h.restart().await;
    let before = h.entries("s").await.len();
    assert_eq!(h.run("s").await, Outcome::Idle);
    assert_eq!(
        h.entries("s").await.len(),
        before,
        "a new harness without a confirmation appends nothing"
    );
    assert!(!marker.exists());

    confirm(&h, &tool, ConfirmationResult::Allow, None).await;
    assert_eq!(h.run("s").await, Outcome::Idle);
    assert!(marker.exists(), "the confirmed call ran");
    let entries = h.entries("s").await;
    let types: Vec<_> = entries.iter().map(|e| e.type_name().to_owned()).collect();
    assert_eq!(
        types[before..],
        strs(&[
            "user.tool_confirmation",
            "session.status_running",
            "agent.tool_result",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.usage",
            "session.status_idle",
        ])
    );
    assert_eq!(texts(&entries, "agent.tool_result"), strs(&["ran\n"]));
    assert_eq!(texts(&entries, "agent.message").last().unwrap(), "done");
    let _ = std::fs::remove_file(&marker);
}

#[tokio::test]
async fn a_denied_call_is_not_run_and_the_model_reads_the_denial() {
    let marker = marker();
    let h = harness(&script(&marker), ASK_BASH).await;
    let tool = wait_for_confirmation(&h).await;
    confirm(
        &h,
        &tool,
        ConfirmationResult::Deny,
        Some("not on production, please"),
    )
    .await;
    assert_eq!(h.run("s").await, Outcome::Idle);
    assert!(!marker.exists(), "a denied call ran");

    let entries = h.entries("s").await;
    let result = entries
        .iter()
        .find_map(|e| match &e.body {
            EventBody::AgentToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a tool result");
    assert_eq!(result.tool_use_id, tool.to_string());
    assert_eq!(result.is_error, Some(true));
    let denial = "The user denied this tool call: not on production, please";
    assert_eq!(texts(&entries, "agent.tool_result"), strs(&[denial]));

    // The model's next request answers the call with the denial.
    let second = entries
        .iter()
        .rposition(|e| e.type_name() == "span.model_request_start")
        .unwrap();
    let request = context::build(&entries, second, &h.agent);
    let last = request.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    let answered = last.content.iter().any(|b| match b {
        Block::ToolResult {
            content, is_error, ..
        } => {
            *is_error
                && content
                    .iter()
                    .any(|c| matches!(c, Block::Text { text } if text == denial))
        }
        _ => false,
    });
    assert!(answered, "{:?}", last.content);
    assert_eq!(texts(&entries, "agent.message").last().unwrap(), "done");
    let EventBody::SessionStatusIdle(idle) = &entries.last().unwrap().body else {
        panic!("not idle")
    };
    assert_eq!(idle.stop_reason, StopReason::EndTurn);
}
