//! The turn engine against a real redis-server, a real sandbox daemon and the scripted provider.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "engine_support.rs"]
mod support;

use std::time::Duration;

use corral_api::events::{
    ContentBlock, Empty, EventBody, EventId, Permission, StopReason, UserCustomToolResult, UserInterrupt,
};
use corral_harness::engine::Outcome;
use corral_harness::engine::events::{INTERRUPTED_BY_RESTART, INTERRUPTED_BY_USER};
use corral_session::NewEvent;
use support::{NS, harness, strs, texts};

const TURN_WITH_TOOL: &[&str] = &[
    "user.message",
    "session.status_running",
    "span.model_request_start",
    "agent.thinking",
    "agent.message",
    "agent.tool_use",
    "span.model_request_end",
    "session.usage",
    "agent.tool_result",
    "span.model_request_start",
    "agent.message",
    "span.model_request_end",
    "session.usage",
    "session.status_idle",
];

#[tokio::test]
async fn a_multi_turn_session_with_tool_calls_runs_end_to_end() {
    let script = r#"turns:
  - content:
      - thinking: "plan"
      - text: "Writing."
      - tool_use: {name: bash, input: {command: "echo one > f.txt && cat f.txt"}}
  - content: [{text: "Wrote it."}]
  - content:
      - thinking: "read it back"
      - text: "Reading."
      - tool_use: {name: read, input: {file_path: "f.txt"}}
  - content: [{text: "It says one."}]
"#;
    let h = harness(script, "").await;
    h.say("s1", "write a file").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    h.say("s1", "read it").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    // Nothing left to do: a third run appends nothing.
    assert_eq!(h.run("s1").await, Outcome::Idle);
    // The first run read the log whole; the next two only what was appended since (the log kept between turns).
    let lookups = |result| {
        h.metrics
            .log_cache_lookups
            .get_or_create(&corral_harness::metrics::ResultLabel { result })
            .get()
    };
    assert_eq!((lookups("miss"), lookups("hit")), (1, 2));
    assert_eq!(h.metrics.log_cache_sessions.get(), 1);
    assert!(h.metrics.log_cache_bytes.get() > 0);

    let entries = h.entries("s1").await;
    let types: Vec<String> = entries.iter().map(|e| e.type_name().to_owned()).collect();
    let expected: Vec<String> = [TURN_WITH_TOOL, TURN_WITH_TOOL]
        .concat()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(types, expected);
    let results = texts(&entries, "agent.tool_result");
    assert_eq!(results[0], "one\n");
    assert!(results[1].contains("one"), "{results:?}");
    assert_eq!(
        texts(&entries, "agent.message"),
        strs(&["Writing.", "Wrote it.", "Reading.", "It says one."])
    );
    // Tool uses carry their permission; results answer them; spans pair up; ids are unique.
    let uses: Vec<&EventId> = entries
        .iter()
        .filter(|e| e.type_name() == "agent.tool_use")
        .map(|e| &e.id)
        .collect();
    for (entry, use_id) in entries
        .iter()
        .filter(|e| e.type_name() == "agent.tool_result")
        .zip(&uses)
    {
        let EventBody::AgentToolResult(r) = &entry.body else {
            unreachable!()
        };
        assert_eq!(r.tool_use_id, use_id.to_string());
        assert_eq!(r.is_error, Some(false));
    }
    for entry in entries.iter().filter(|e| e.type_name() == "agent.tool_use") {
        let EventBody::AgentToolUse(t) = &entry.body else {
            unreachable!()
        };
        assert_eq!(t.evaluated_permission, Some(Permission::Allow));
    }
    let mut ids: Vec<_> = entries.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), entries.len());
    // The thinking text is kept privately for the next request, and the API form does not show it.
    let thinking = entries
        .iter()
        .find(|e| e.type_name() == "agent.thinking")
        .unwrap();
    assert_eq!(thinking.hidden_str("thinking"), Some("plan"));
    assert_eq!(thinking.body, EventBody::AgentThinking(Empty {}));
}

#[tokio::test]
async fn a_custom_tool_pauses_the_session_until_its_result_comes() {
    let script = r#"turns:
  - content: [{text: "Let me look that up."}, {tool_use: {name: lookup, input: {q: "x"}}}]
  - content: [{text: "The answer is 42."}]
"#;
    let custom = "    - type: custom\n      name: lookup\n      description: Look something up.\n      inputSchema: {type: object}\n";
    let h = harness(script, custom).await;
    h.say("s", "what is x?").await;
    assert_eq!(h.run("s").await, Outcome::Idle);
    let entries = h.entries("s").await;
    let custom_use = entries
        .iter()
        .find(|e| e.type_name() == "agent.custom_tool_use")
        .unwrap()
        .id
        .clone();
    let EventBody::SessionStatusIdle(idle) = &entries.last().unwrap().body else {
        panic!("not idle")
    };
    assert_eq!(
        idle.stop_reason,
        StopReason::RequiresAction {
            event_ids: vec![custom_use.to_string()]
        }
    );

    // A wake-up without the result changes nothing.
    let before = entries.len();
    assert_eq!(h.run("s").await, Outcome::Idle);
    assert_eq!(h.entries("s").await.len(), before);

    h.store
        .session(NS, "s")
        .append_user([EventBody::UserCustomToolResult(UserCustomToolResult {
            custom_tool_use_id: custom_use.to_string(),
            content: Some(vec![ContentBlock::text("42")]),
            is_error: None,
            session_thread_id: None,
        })])
        .await
        .unwrap();
    assert_eq!(h.run("s").await, Outcome::Idle);
    let types = h.types("s").await;
    assert_eq!(
        types[before..],
        strs(&[
            "user.custom_tool_result",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.usage",
            "session.status_idle",
        ])
    );
    assert_eq!(
        texts(&h.entries("s").await, "agent.message").last().unwrap(),
        "The answer is 42."
    );
}

async fn interrupt(h: &support::Harness, session: &str) {
    h.store
        .session(NS, session)
        .append_user([EventBody::UserInterrupt(UserInterrupt::default())])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_interrupt_stops_a_streaming_reply() {
    let script = r#"turns:
  - content: [{text: ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]}]
    delay_ms: 300
"#;
    let h = harness(script, "").await;
    h.say("s", "talk slowly").await;
    let run = {
        let engine = h.engine.clone();
        let agent = h.agent.clone();
        let log = h.store.session(NS, "s");
        tokio::spawn(async move {
            let lease = log.acquire_lease("w", Duration::from_secs(30)).await.unwrap();
            engine
                .run(NS, "s", &agent, lease.token, &Default::default())
                .await
        })
    };
    h.wait_for("s", "span.model_request_start").await;
    interrupt(&h, "s").await;
    let outcome = tokio::time::timeout(Duration::from_secs(2), run)
        .await
        .expect("the interrupt stops the stream");
    assert_eq!(outcome.unwrap(), Outcome::Idle);
    let entries = h.entries("s").await;
    let types: Vec<_> = entries.iter().map(|e| e.type_name().to_owned()).collect();
    assert_eq!(
        types,
        strs(&[
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "user.interrupt",
            "span.model_request_end",
            "session.status_idle",
        ])
    );
    let EventBody::SpanModelRequestEnd(end) = &entries[4].body else {
        unreachable!()
    };
    assert_eq!(end.is_error, Some(true));
}

#[tokio::test]
async fn an_interrupt_stops_a_running_tool_call() {
    let script = r#"turns:
  - content: [{tool_use: {name: bash, input: {command: "sleep 20"}}}]
  - content: [{text: "ok"}]
"#;
    let h = harness(script, "").await;
    h.say("s", "sleep").await;
    let run = {
        let engine = h.engine.clone();
        let agent = h.agent.clone();
        let log = h.store.session(NS, "s");
        tokio::spawn(async move {
            let lease = log.acquire_lease("w", Duration::from_secs(30)).await.unwrap();
            engine
                .run(NS, "s", &agent, lease.token, &Default::default())
                .await
        })
    };
    h.wait_for("s", "agent.tool_use").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    interrupt(&h, "s").await;
    let outcome = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the interrupt stops the tool");
    assert_eq!(outcome.unwrap(), Outcome::Idle);
    let entries = h.entries("s").await;
    let n = entries.len();
    assert_eq!(entries[n - 3].type_name(), "user.interrupt");
    assert_eq!(texts(&entries, "agent.tool_result"), strs(&[INTERRUPTED_BY_USER]));
    let EventBody::SessionStatusIdle(idle) = &entries[n - 1].body else {
        panic!()
    };
    assert_eq!(idle.stop_reason, StopReason::EndTurn);
}

/// A worker appended a reply with a `bash` tool use running `command`, then died before the result; waits until its
/// lease expired. Returns the tool use's id and the dead worker's fencing token.
async fn a_worker_died_mid_tool(h: &support::Harness, command: &str) -> (EventId, u64) {
    h.say("s", "go").await;
    let log = h.store.session(NS, "s");
    let dead = log
        .acquire_lease("dead", Duration::from_millis(200))
        .await
        .unwrap();
    let span = EventId::generate();
    let tool = EventId::generate();
    log.append(
        dead.token,
        [
            NewEvent::from(EventBody::SessionStatusRunning(Empty {})),
            NewEvent::with_id(span.clone(), EventBody::SpanModelRequestStart(Empty {})),
        ],
    )
    .await
    .unwrap();
    log.append(
        dead.token,
        [
            NewEvent::with_id(
                tool.clone(),
                EventBody::AgentToolUse(corral_api::events::AgentToolUse {
                    name: "bash".into(),
                    input: serde_json::json!({ "command": command }),
                    evaluated_permission: Some(Permission::Allow),
                    evaluation: None,
                    session_thread_id: None,
                }),
            ),
            NewEvent::from(EventBody::SpanModelRequestEnd(
                corral_api::events::SpanModelRequestEnd {
                    model_request_start_id: span.to_string(),
                    model_usage: Default::default(),
                    is_error: None,
                },
            )),
        ],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the dead worker's lease expires
    (tool, dead.token.0)
}

#[tokio::test]
async fn a_tool_use_left_without_result_by_a_crash_is_reported_interrupted_not_rerun() {
    let marker =
        std::env::temp_dir().join(format!("corral-rerun-{}", corral_sandbox_protocol::random_hex(6)));
    let command = format!("touch {}", marker.display());
    let script = format!(
        "turns:\n  - content: [{{tool_use: {{name: bash, input: {{command: \"{command}\"}}}}}}]\n  - content: [{{text: \"recovered\"}}]\n"
    );
    let h = harness(&script, "").await;
    // The call never reached a sandbox: there is none to recover it from.
    let (tool, _) = a_worker_died_mid_tool(&h, &command).await;

    assert_eq!(h.run("s").await, Outcome::Idle);
    let entries = h.entries("s").await;
    let types: Vec<_> = entries.iter().map(|e| e.type_name().to_owned()).collect();
    assert_eq!(
        types[5..],
        strs(&[
            "agent.tool_result",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.usage",
            "session.status_idle",
        ])
    );
    let EventBody::AgentToolResult(result) = &entries[5].body else {
        unreachable!()
    };
    assert_eq!(result.tool_use_id, tool.to_string());
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        texts(&entries, "agent.tool_result"),
        strs(&[INTERRUPTED_BY_RESTART])
    );
    assert!(!marker.exists(), "the interrupted call was run again");
    assert_eq!(texts(&entries, "agent.message"), strs(&["recovered"]));
}

/// Review (issue 15): a replica lost mid-tool, whose call the sandbox ran, used to leave the new holder reporting the
/// call interrupted; the model then asked again and the tool ran twice. The new holder now recovers the run's result
/// from the sandbox, and the lost replica can start nothing there any more.
#[tokio::test]
async fn a_call_the_lost_replica_ran_is_answered_with_that_runs_result_not_run_again() {
    let ledger = std::env::temp_dir().join(format!(
        "corral-ledger-{}",
        corral_sandbox_protocol::random_hex(6)
    ));
    let command = format!("sleep 0.5; echo pushed >> {0}; wc -l < {0}", ledger.display());
    let script = format!(
        "turns:\n  - content: [{{tool_use: {{name: bash, input: {{command: \"{command}\"}}}}}}]\n  - content: [{{text: \"recovered\"}}]\n"
    );
    let h = harness(&script, "").await;
    let (tool, dead_token) = a_worker_died_mid_tool(&h, &command).await;
    // The dead worker's call reached the sandbox and is still running there when the new holder takes over.
    let input = serde_json::json!({ "command": command });
    let id = tool.to_string();
    let call = |token| corral_harness::tools::ToolCall {
        namespace: NS,
        session: "s",
        tool_use_id: &id,
        name: "bash",
        input: &input,
        server: None,
        fencing_token: token,
        skills: &[],
    };
    let tools = h.engine.tools().clone();
    let (dead_run, outcome) = tokio::join!(tools.execute(call(dead_token)), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.run("s").await
    });
    assert_eq!(outcome, Outcome::Idle);
    let entries = h.entries("s").await;
    assert_eq!(texts(&entries, "agent.tool_result"), strs(&["1\n"]));
    assert_eq!(dead_run.text(), "1\n");
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        "pushed\n",
        "the call ran twice"
    );
    // The lost replica's token is now refused: it starts nothing more in this sandbox.
    let late = tools.execute(call(dead_token)).await;
    assert!(
        late.is_error && late.text().contains("fencing token"),
        "{}",
        late.text()
    );
    assert_eq!(std::fs::read_to_string(&ledger).unwrap(), "pushed\n");
    assert_eq!(texts(&entries, "agent.message"), strs(&["recovered"]));
}

#[tokio::test]
async fn a_stale_worker_is_fenced_and_writes_nothing_after_the_takeover() {
    let script = r#"turns:
  - content: [{text: ["one ", "two ", "three"]}]
    delay_ms: 200
"#;
    let h = harness(script, "").await;
    h.say("s", "hello").await;
    let log = h.store.session(NS, "s");
    let stale = log.acquire_lease("stale", Duration::from_secs(30)).await.unwrap();
    let run = {
        let engine = h.engine.clone();
        let agent = h.agent.clone();
        tokio::spawn(async move {
            engine
                .run(NS, "s", &agent, stale.token, &Default::default())
                .await
        })
    };
    h.wait_for("s", "span.model_request_start").await;
    // The stale worker is partitioned away: its lease lapses and another worker takes the session.
    let mut conn = h.store.connection();
    let _: () = redis::cmd("DEL")
        .arg(log.keys().lease())
        .query_async(&mut conn)
        .await
        .unwrap();
    let fresh = log.acquire_lease("fresh", Duration::from_secs(30)).await.unwrap();
    assert!(fresh.token > stale.token);
    let taken_over_at = h.entries("s").await.len();

    assert_eq!(run.await.unwrap(), Outcome::Lost);
    assert_eq!(
        h.entries("s").await.len(),
        taken_over_at,
        "the stale worker wrote after the takeover"
    );

    let outcome = h
        .engine
        .run(NS, "s", &h.agent, fresh.token, &Default::default())
        .await;
    assert_eq!(outcome, Outcome::Idle);
    let types = h.types("s").await;
    assert_eq!(
        types,
        strs(&[
            "user.message",
            "session.status_running",
            "span.model_request_start",
            // The new holder says at once that the cut-off call is made again.
            "session.status_rescheduled",
            "agent.message",
            "span.model_request_end",
            "session.usage",
            "session.status_idle",
        ])
    );
}

#[tokio::test]
async fn a_full_session_ends_its_turn_with_an_error_instead_of_failing_again_and_again() {
    let script = "turns:\n  - content: [{text: \"a reply that does not fit\"}]\n";
    let mut h = harness(script, "").await;
    let config = corral_session::Config {
        session_caps: corral_session::SessionCaps {
            max_events: 4,
            ..corral_session::SessionCaps::default()
        },
        ..corral_session::Config::default()
    };
    let store = corral_session::Store::connect(&h.redis.url(), config)
        .await
        .unwrap();
    h.engine = support::engine(store.clone());
    h.store = store;
    h.say("full", "hello").await;
    assert_eq!(h.run("full").await, Outcome::Idle, "the wake-up is done with");
    let entries = h.entries("full").await;
    let types: Vec<String> = entries.iter().map(|e| e.type_name().to_owned()).collect();
    assert_eq!(
        &types[types.len() - 2..],
        ["session.error", "session.status_idle"],
        "{types:?}"
    );
    let error = serde_json::to_string(&entries[entries.len() - 2].body).unwrap();
    assert!(error.contains("the limit is 4 events per session"), "{error}");
    // Nothing is left to do, and the client is refused further messages.
    assert_eq!(h.run("full").await, Outcome::Idle);
    assert_eq!(h.entries("full").await.len(), entries.len());
    let refused = h
        .store
        .session(support::NS, "full")
        .append_user([EventBody::UserMessage(corral_api::events::UserMessage {
            content: vec![ContentBlock::text("more")],
        })])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, corral_session::Error::SessionFull { .. }),
        "{refused:?}"
    );
}

/// A gate that never opens: the replica's lease may be lost.
struct LeaseLost;

impl corral_harness::engine::ToolGate for LeaseLost {
    fn may_run_tool(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(std::future::ready(false))
    }
}

/// Review bug 5: a saturated replica whose lease may have moved on must not start a tool (the sandbox would get
/// two drivers); the old engine checked nothing before a tool call.
#[tokio::test]
async fn no_tool_starts_once_the_replicas_lease_may_be_lost() {
    let marker =
        std::env::temp_dir().join(format!("corral-gated-{}", corral_sandbox_protocol::random_hex(6)));
    let script = format!(
        "turns:\n  - content: [{{tool_use: {{name: bash, input: {{command: \"touch {}\"}}}}}}]\n  - content: [{{text: \"done\"}}]\n",
        marker.display()
    );
    let h = harness(&script, "").await;
    h.say("s", "go").await;
    let lease = h
        .store
        .session(NS, "s")
        .acquire_lease("gated", Duration::from_secs(30))
        .await
        .unwrap();
    let outcome = h
        .engine
        .run_gated(NS, "s", &h.agent, lease.token, &Default::default(), &LeaseLost)
        .await;
    assert_eq!(outcome, Outcome::Lost);
    assert!(!marker.exists(), "the tool ran");
    let types = h.types("s").await;
    assert!(types.contains(&"agent.tool_use".to_owned()), "{types:?}");
    assert!(!types.contains(&"agent.tool_result".to_owned()), "{types:?}");
}
