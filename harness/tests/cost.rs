//! Cost metering and budgets against a real redis-server, a real sandbox daemon and the scripted provider: the
//! cost of scripted token counts computed by hand, active time from the log's status events, and budgets that stop a
//! session instead of calling the model again.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "engine_support.rs"]
mod support;

use std::sync::Arc;

use corral_api::events::{EventBody, StopReason};
use corral_harness::engine::{EngineConfig, Outcome};
use corral_harness::pricing::PriceTable;
use corral_harness::status::compute;
use support::{Harness, harness_with};

/// Two model calls with known token counts: the first calls `bash`, the second ends the turn.
const SCRIPT: &str = r#"turns:
  - content:
      - text: "Checking."
      - tool_use: {name: bash, input: {command: "echo hi"}}
    usage: {input_tokens: 1200, output_tokens: 300, cache_read_input_tokens: 5000, cache_creation_input_tokens: 800}
  - content: [{text: "Done."}]
    usage: {input_tokens: 1500, output_tokens: 100, cache_read_input_tokens: 6000, cache_creation_input_tokens: 0}
  - content: [{text: "Again."}]
    usage: {input_tokens: 10, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
"#;

const PRICES: &str =
    "- {model: scripted, provider: scripted, input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75}";

async fn with_prices(prices: &str, spec_extra: &str) -> Harness {
    let config = EngineConfig {
        prices: Arc::new(PriceTable::parse(prices).unwrap()),
        ..EngineConfig::default()
    };
    harness_with(SCRIPT, spec_extra, config).await
}

fn last_usage(h: &[corral_harness::log::LogEntry]) -> corral_api::events::SessionUsage {
    h.iter()
        .rev()
        .find_map(|e| match &e.body {
            EventBody::SessionUsage(u) => Some(u.clone()),
            _ => None,
        })
        .expect("a session.usage event")
}

fn stop_reasons(entries: &[corral_harness::log::LogEntry]) -> Vec<StopReason> {
    entries
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::SessionStatusIdle(idle) => Some(idle.stop_reason.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_cost_of_scripted_token_counts_matches_the_hand_calculation() {
    let h = with_prices(PRICES, "").await;
    h.say("s1", "go").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    let entries = h.entries("s1").await;

    // By hand, in USD per million tokens: call 1 = 1200×3 + 300×15 + 5000×0.3 + 800×3.75 = 12,600;
    // call 2 = 1500×3 + 100×15 + 6000×0.3 + 0×3.75 = 7,800. Together 20,400 per million = $0.0204 = 2.04 cents.
    let usage = last_usage(&entries);
    assert_eq!(usage.usage.list_cost.as_ref().unwrap().amount, "2.04");
    assert_eq!(usage.usage.list_cost.as_ref().unwrap().currency, "USD");
    assert_eq!(usage.usage.input_tokens, Some(2700));
    assert_eq!(usage.usage.output_tokens, Some(400));
    assert_eq!(usage.usage.cache_read_input_tokens, Some(11000));
    let written = usage
        .usage
        .cache_creation
        .as_ref()
        .unwrap()
        .ephemeral_5m_input_tokens;
    assert_eq!(written, Some(800));

    // The Session status the harness writes says the same, from the log alone.
    let fields = compute(&entries);
    assert_eq!(fields.list_cost.unwrap().amount, "2.04");
    assert_eq!(fields.usage.input_tokens, 2700);
    assert_eq!(fields.usage.cache_creation_input_tokens, 800);

    // Active time is the running → idle span of the log, to the millisecond.
    let running = entries
        .iter()
        .find(|e| e.type_name() == "session.status_running")
        .unwrap();
    let idle = entries
        .iter()
        .find(|e| e.type_name() == "session.status_idle")
        .unwrap();
    let expected = (idle.cursor.millis() - running.cursor.millis()) as f64 / 1000.0;
    assert_eq!(fields.active_seconds, expected);

    // The metrics carry the tokens and the cost by provider and model.
    let mut registry = prometheus_client::registry::Registry::with_prefix("corral_harness");
    h.metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"corral_harness_model_tokens_total{provider="scripted",model="scripted",kind="input"} 2700"#,
        r#"corral_harness_model_tokens_total{provider="scripted",model="scripted",kind="cache_write"} 800"#,
        r#"corral_harness_model_list_cost_usd_total{provider="scripted",model="scripted"} 0.0204"#,
        r#"corral_harness_model_requests_total{provider="scripted",model="scripted",outcome="ok"} 2"#,
        r#"corral_harness_tool_calls_total{tool="bash",outcome="ok"} 1"#,
        r#"corral_harness_turns_total{stop_reason="end_turn"} 1"#,
        "corral_harness_time_to_first_token_seconds_count 1",
        r#"corral_harness_tool_call_duration_seconds_count{tool="bash"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn a_model_without_a_price_has_no_cost_not_a_zero_cost() {
    let h = with_prices("- {model: another-model, input: 3, output: 15}", "").await;
    h.say("s1", "go").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    let entries = h.entries("s1").await;
    let usage = last_usage(&entries);
    assert_eq!(usage.usage.list_cost, None);
    assert_eq!(usage.usage.input_tokens, Some(2700));
    assert_eq!(compute(&entries).list_cost, None);
}

#[tokio::test]
async fn a_token_budget_stops_the_session_before_the_next_model_request() {
    // The first call alone uses 7,300 tokens.
    let h = with_prices(PRICES, "  budget: {maxTokens: 5000}\n").await;
    h.say("s1", "go").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    let entries = h.entries("s1").await;
    let types: Vec<&str> = entries.iter().map(|e| e.type_name()).collect();
    // The tool call of the first reply still runs; the model is not called again.
    assert_eq!(
        types.iter().filter(|t| **t == "span.model_request_start").count(),
        1,
        "{types:?}"
    );
    assert!(types.contains(&"agent.tool_result"), "{types:?}");
    assert_eq!(stop_reasons(&entries), vec![StopReason::BudgetReached]);
    // The usage snapshot carries the budget in the API's shape.
    let budget = last_usage(&entries).budget.unwrap();
    assert_eq!(budget, serde_json::json!({"type": "limit", "max_tokens": 5000}));

    // A new message finds the budget spent: running, then idle again, without a model request.
    h.say("s1", "more").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    let entries = h.entries("s1").await;
    let spans = entries
        .iter()
        .filter(|e| e.type_name() == "span.model_request_start")
        .count();
    assert_eq!(spans, 1);
    assert_eq!(
        stop_reasons(&entries),
        vec![StopReason::BudgetReached, StopReason::BudgetReached]
    );
    // And nothing is left to do.
    let before = entries.len();
    assert_eq!(h.run("s1").await, Outcome::Idle);
    assert_eq!(h.entries("s1").await.len(), before);
}

#[tokio::test]
async fn a_cost_budget_stops_the_session_once_the_list_cost_reaches_it() {
    // One cent: the first call costs 1.26 cents.
    let h = with_prices(PRICES, "  budget: {maxCost: {amount: \"1\"}}\n").await;
    h.say("s1", "go").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    let entries = h.entries("s1").await;
    let spans = entries
        .iter()
        .filter(|e| e.type_name() == "span.model_request_start")
        .count();
    assert_eq!(spans, 1);
    assert_eq!(stop_reasons(&entries), vec![StopReason::BudgetReached]);
    assert_eq!(compute(&entries).list_cost.unwrap().amount, "1.26");

    // A budget above what is spent lets the session run to its end.
    let h = with_prices(PRICES, "  budget: {maxCost: {amount: \"2500\"}}\n").await;
    h.say("s2", "go").await;
    assert_eq!(h.run("s2").await, Outcome::Idle);
    assert_eq!(stop_reasons(&h.entries("s2").await), vec![StopReason::EndTurn]);
}

#[tokio::test]
async fn an_agent_wide_budget_stops_a_session_once_all_sessions_together_reach_it() {
    // s1 alone spends 14,900 tokens in two model requests (7,300 before the second, under the total).
    let h = with_prices(PRICES, "  totalBudget: {maxTokens: 10000}\n").await;
    h.say("s1", "go").await;
    assert_eq!(h.run("s1").await, Outcome::Idle);
    assert_eq!(stop_reasons(&h.entries("s1").await), vec![StopReason::EndTurn]);
    let ledger = h.store.spend_by_session(support::NS, "tester").await.unwrap();
    assert_eq!(ledger["s1"].tokens, 14_900, "{ledger:?}");
    assert_eq!(ledger["s1"].cents, Some(2.04), "{ledger:?}");

    // s2 has spent nothing itself, but the agent's sessions together have reached the total: no model request.
    h.say("s2", "go").await;
    assert_eq!(h.run("s2").await, Outcome::Idle);
    let entries = h.entries("s2").await;
    assert!(
        !entries
            .iter()
            .any(|e| e.type_name() == "span.model_request_start"),
        "{:?}",
        entries.iter().map(|e| e.type_name()).collect::<Vec<_>>()
    );
    assert_eq!(stop_reasons(&entries), vec![StopReason::BudgetReached]);
}

#[tokio::test]
async fn sessions_under_an_agent_wide_budget_run_while_their_sum_is_below_it() {
    let h = with_prices(PRICES, "  totalBudget: {maxCost: {amount: \"2500\"}}\n").await;
    for session in ["s1", "s2"] {
        h.say(session, "go").await;
        assert_eq!(h.run(session).await, Outcome::Idle);
        assert_eq!(stop_reasons(&h.entries(session).await), vec![StopReason::EndTurn]);
    }
    let ledger = h.store.spend_by_session(support::NS, "tester").await.unwrap();
    let cents: f64 = ledger.values().filter_map(|s| s.cents).sum();
    assert!(
        (cents - 4.08).abs() < 1e-9,
        "two sessions at 2.04 cents each: {ledger:?}"
    );
}
