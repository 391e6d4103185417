//! A scrape of the harness process's `/metrics` after a scripted turn shows the turn's figures: the real binary in
//! local mode (`serve --agent-file`), a real redis-server, a real sandbox daemon, a real HTTP scrape.
//!
//! Needs the sandbox daemon binary: `cargo build -p corral-sandbox`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use corral_api::events::{ContentBlock, EventBody, UserMessage};
use corral_session::{Config, Order, Store, testing::RedisServer};

const MANIFEST: &str = r#"kind: ConfigMap
apiVersion: v1
metadata: {name: s}
data:
  script.yaml: |
    turns:
      - content:
          - text: "Listing."
          - tool_use: {name: bash, input: {command: "echo hi"}}
        usage: {input_tokens: 1000, output_tokens: 200, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
      - content: [{text: "Done."}]
        usage: {input_tokens: 1300, output_tokens: 50, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: scraped}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: s, key: script.yaml}}
  tools:
    - type: agent_toolset_20260401
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);

/// SIGKILL to the harness and everything it started (its local sandbox daemon).
impl Drop for Child {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_a_scripted_turn_shows_its_figures() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .expect("redis-server");
    let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent_file = dir.path().join("agent.yaml");
    std::fs::write(&agent_file, MANIFEST).unwrap();
    let port = free_port();
    use std::os::unix::process::CommandExt;
    let _harness = Child(
        Command::new(env!("CARGO_BIN_EXE_corral-harness"))
            .args(["serve", "--namespace", "scrape", "--log", "warn"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--price-table", "[{model: scripted, input: 2, output: 10}]"])
            .arg("--redis-url")
            .arg(redis.url())
            .arg("--agent-file")
            .arg(&agent_file)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start corral-harness"),
    );

    let log = store.session("scrape", "sesn_scrape");
    log.append_user([EventBody::UserMessage(UserMessage {
        content: vec![ContentBlock::text("go")],
    })])
    .await
    .unwrap();
    store.enqueue("scrape", "sesn_scrape").await.unwrap();
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
    assert!(idle, "the turn did not end");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let scrape = || async {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // 2,300 input tokens × $2 + 250 output tokens × $10 per million = $0.0071.
    let expected = [
        r#"corral_harness_model_tokens_total{provider="scripted",model="scripted",kind="input"} 2300"#,
        r#"corral_harness_model_tokens_total{provider="scripted",model="scripted",kind="output"} 250"#,
        r#"corral_harness_model_list_cost_usd_total{provider="scripted",model="scripted"} 0.0071"#,
        r#"corral_harness_model_requests_total{provider="scripted",model="scripted",outcome="ok"} 2"#,
        r#"corral_harness_model_request_duration_seconds_count{provider="scripted",model="scripted"} 2"#,
        r#"corral_harness_tool_calls_total{tool="bash",outcome="ok"} 1"#,
        r#"corral_harness_tool_call_duration_seconds_count{tool="bash"} 1"#,
        r#"corral_harness_turns_total{stop_reason="end_turn"} 1"#,
        "corral_harness_time_to_first_token_seconds_count 1",
        "corral_harness_wakeup_queue_depth ",
        "corral_harness_wakeup_queue_oldest_age_seconds ",
        "corral_harness_redis_errors_total 0",
        r#"corral_harness_wakeups_total{outcome="idle"} 1"#,
    ];
    // The worker counts the wake-up just after the turn's last append: scrape until it has (or give up).
    let mut text = scrape().await;
    for _ in 0..100 {
        if expected.iter().all(|line| text.contains(line)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape().await;
    }
    for line in expected {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
