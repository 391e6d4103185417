//! The harness binary killed with SIGKILL at random points during 50 turns, restarted each time: every turn
//! completes, and the log loses and duplicates nothing.
//!
//! Needs the sandbox daemon binary: `cargo build -p corral-sandbox`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corral_api::events::{ContentBlock, EventBody, StopReason, UserMessage};
use corral_harness::engine::events::INTERRUPTED_BY_RESTART;
use corral_harness::log::{LogEntry, LogView};
use corral_session::{Config, Store, testing::RedisServer};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

const NS: &str = "chaos";
const SESSION: &str = "sesn_chaos";
const TURNS: usize = 50;

fn random_below(n: u64) -> u64 {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).unwrap();
    u64::from_le_bytes(buf) % n
}

fn script() -> String {
    let mut s = String::from("turns:\n");
    for k in 0..TURNS {
        s.push_str(&format!(
            "  - content:\n      - text: [\"Turn {k}\", \" starts\"]\n      - tool_use: {{name: bash, input: {{command: \"echo turn-{k}\"}}}}\n    delay_ms: 15\n"
        ));
        s.push_str(&format!(
            "  - content: [{{text: [\"done \", \"{k}\"]}}]\n    delay_ms: 15\n"
        ));
    }
    s
}

fn manifest() -> String {
    let script: String = script().lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {{name: s}}\ndata:\n  script.yaml: |\n{script}---\n\
         apiVersion: corral.dev/v1alpha1\nkind: Agent\nmetadata: {{name: chaos}}\nspec:\n  model:\n    id: scripted\n    \
         provider: {{type: scripted, scriptRef: {{name: s, key: script.yaml}}}}\n  tools:\n    - type: agent_toolset_20260401\n"
    )
}

struct HarnessProcess {
    child: Child,
}

impl HarnessProcess {
    fn start(redis: &str, agent_file: &std::path::Path, log: &std::path::Path) -> Self {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_corral-harness"))
            .args([
                "serve",
                "--namespace",
                NS,
                "--name",
                "chaos",
                "--concurrency",
                "2",
            ])
            .args(["--visibility-timeout", "1s", "--retry-base", "10ms"])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--log",
                "warn,corral_harness=info",
                "--log-format",
                "text",
            ])
            .arg("--redis-url")
            .arg(redis)
            .arg("--agent-file")
            .arg(agent_file)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start corral-harness");
        Self { child }
    }

    /// SIGKILL to the harness and everything it started (its local sandbox), like a pod's containers dying.
    fn kill(mut self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

async fn entries(store: &Store) -> Vec<LogEntry> {
    let mut view = LogView::new(store, NS, SESSION);
    view.refresh().await.unwrap();
    view.entries().to_vec()
}

fn ended_turns(entries: &[LogEntry]) -> usize {
    entries
        .iter()
        .filter(
            |e| matches!(&e.body, EventBody::SessionStatusIdle(i) if i.stop_reason == StopReason::EndTurn),
        )
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .expect("redis-server");
    let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent_file = dir.path().join("agent.yaml");
    std::fs::write(&agent_file, manifest()).unwrap();
    let harness_log = dir.path().join("harness.log");
    let mut harness = HarnessProcess::start(&redis.url(), &agent_file, &harness_log);
    let log = store.session(NS, SESSION);
    let mut kills = 0;
    let started = Instant::now();
    for k in 0..TURNS {
        log.append_user([EventBody::UserMessage(UserMessage {
            content: vec![ContentBlock::text(format!("turn {k}"))],
        })])
        .await
        .unwrap();
        store.enqueue(NS, SESSION).await.unwrap();
        // Kill in two turns out of three, at a random point of the turn (it lasts about 100 ms).
        if random_below(3) > 0 {
            tokio::time::sleep(Duration::from_millis(random_below(160))).await;
            harness.kill();
            kills += 1;
            harness = HarnessProcess::start(&redis.url(), &agent_file, &harness_log);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while ended_turns(&entries(&store).await) < k + 1 {
            assert!(
                Instant::now() < deadline,
                "turn {k} did not complete; harness log:\n{}",
                std::fs::read_to_string(&harness_log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    harness.kill();
    // A turn taken over inside a model call says so with `session.status_rescheduled` before the call is made
    // again, and its status turns `running` again at its next model call; those aside, every turn is the same.
    let mut resumed = 0;
    let mut after_resume = false;
    let entries: Vec<LogEntry> = entries(&store)
        .await
        .into_iter()
        .filter(|e| match &e.body {
            EventBody::SessionStatusRescheduled(_) => {
                resumed += 1;
                after_resume = true;
                false
            }
            EventBody::SessionStatusRunning(_) if after_resume => {
                after_resume = false;
                false
            }
            EventBody::SessionStatusIdle(_) => {
                after_resume = false;
                true
            }
            _ => true,
        })
        .collect();

    // No duplicated event ids.
    let mut ids: Vec<_> = entries.iter().map(|e| e.id.to_string()).collect();
    ids.sort();
    let unique = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), unique, "duplicated event ids");

    // Every turn has exactly the expected sequence, and the model saw each earlier reply exactly once (the
    // scripted provider picks its reply by the number of assistant messages in the context).
    let expected = [
        "user.message",
        "session.status_running",
        "span.model_request_start",
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
    let turns: Vec<&[LogEntry]> = entries.chunks(expected.len()).collect();
    assert_eq!(
        turns.len(),
        TURNS,
        "{} events for {TURNS} turns: {:?}",
        entries.len(),
        entries.iter().map(LogEntry::type_name).collect::<Vec<_>>()
    );
    let mut interrupted = 0;
    for (k, turn) in turns.iter().enumerate() {
        let types: Vec<&str> = turn.iter().map(LogEntry::type_name).collect();
        assert_eq!(types, expected, "turn {k}");
        let text = |e: &LogEntry| match &e.body {
            EventBody::AgentMessage(m) => m.content.iter().filter_map(|b| b.as_text()).collect::<String>(),
            EventBody::AgentToolResult(r) => r
                .content
                .iter()
                .flatten()
                .filter_map(|b| b.as_text())
                .collect::<String>(),
            _ => String::new(),
        };
        assert_eq!(text(&turn[3]), format!("Turn {k} starts"));
        assert_eq!(text(&turn[9]), format!("done {k}"));
        let result = text(&turn[7]);
        if result == INTERRUPTED_BY_RESTART {
            interrupted += 1;
        } else {
            assert_eq!(result, format!("turn-{k}\n"), "turn {k}");
        }
        let EventBody::AgentToolResult(r) = &turn[7].body else {
            unreachable!()
        };
        assert_eq!(r.tool_use_id, turn[4].id.to_string());
        let EventBody::SpanModelRequestEnd(end) = &turn[5].body else {
            unreachable!()
        };
        assert_eq!(end.model_request_start_id, turn[2].id.to_string());
    }
    eprintln!(
        "{TURNS} turns, {kills} kills, {interrupted} tool calls interrupted, {} model calls resumed, {} events, {:?}",
        resumed,
        entries.len(),
        started.elapsed()
    );
    assert!(kills > 0);
}
