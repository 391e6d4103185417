//! The calls this daemon ran, so that no tool runs twice and no stale harness replica starts one.
//!
//! A harness replica that lost its session's lease (a partition, a stalled process) may still be running a tool
//! when another replica takes the session over and asks for the same call again, because its result never reached
//! the log. Two rules keep that from running the tool twice:
//!
//! - **One run per `tool_use_id`.** A call is run once, as a task of its own that outlives the request that started
//!   it; a request naming the same `tool_use_id` (the new holder's, or a retry after a broken connection) joins the
//!   run in flight or gets its kept result. The last [`KEPT_CALLS`] calls are kept.
//! - **Fencing tokens.** Every lease of a session carries a larger fencing token than the one before. The daemon
//!   remembers the largest it has seen and refuses a call carrying a smaller one: the replica that sent it lost the
//!   session. (A daemon that restarts forgets; its pod's tools were killed with it.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use corral_sandbox_protocol::ToolResult;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::tools::{ToolName, Toolbox};

/// How many calls (in flight or finished) are kept for joining. A result is at most the daemon's output limit
/// (64 KiB by default), so this bounds the memory kept to a few MiB.
pub const KEPT_CALLS: usize = 64;

type Run = Shared<BoxFuture<'static, Arc<ToolResult>>>;

/// What [`Calls::start`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The call's fencing token is older than one this daemon has seen.
    #[error(
        "fencing token {sent} is older than {newest}, which another holder of this session sent: this replica lost \
         the session, so the call was not run"
    )]
    Fenced {
        /// The call's token.
        sent: u64,
        /// The largest token seen.
        newest: u64,
    },
    /// The `tool_use_id` names an earlier call with another tool or input.
    #[error("tool_use_id {0:?} already named a different call (another tool or input); it was not run")]
    Reused(String),
}

struct Kept {
    tool: ToolName,
    input: serde_json::Value,
    run: Run,
}

#[derive(Default)]
struct State {
    newest_token: u64,
    by_id: HashMap<String, Kept>,
    order: VecDeque<String>,
}

/// The daemon's record of calls and fencing tokens. Cheap to share.
#[derive(Clone, Default)]
pub struct Calls {
    state: Arc<Mutex<State>>,
}

/// How a call was answered, for the daemon's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This request started the run.
    Ran,
    /// This request joined a run another request had started (in flight or finished).
    Joined,
}

impl Calls {
    /// Checks `fencing_token` and returns the run answering this call: a new one on `toolbox`, or the run an earlier
    /// request with the same `tool_use_id` started.
    pub fn start(
        &self,
        toolbox: &Arc<Toolbox>,
        tool: ToolName,
        input: serde_json::Value,
        tool_use_id: Option<&str>,
        fencing_token: Option<u64>,
    ) -> Result<(impl Future<Output = Arc<ToolResult>> + use<>, Answer), Refusal> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sent) = fencing_token {
            if sent < state.newest_token {
                return Err(Refusal::Fenced {
                    sent,
                    newest: state.newest_token,
                });
            }
            state.newest_token = sent;
        }
        if let Some(id) = tool_use_id
            && let Some(kept) = state.by_id.get(id)
        {
            if kept.tool != tool || kept.input != input {
                return Err(Refusal::Reused(id.to_owned()));
            }
            return Ok((kept.run.clone(), Answer::Joined));
        }
        let run = spawn_run(toolbox.clone(), tool, input.clone());
        if let Some(id) = tool_use_id {
            if state.order.len() >= KEPT_CALLS
                && let Some(oldest) = state.order.pop_front()
            {
                state.by_id.remove(&oldest);
            }
            state.order.push_back(id.to_owned());
            state.by_id.insert(
                id.to_owned(),
                Kept {
                    tool,
                    input,
                    run: run.clone(),
                },
            );
        }
        Ok((run, Answer::Ran))
    }
}

/// Runs the tool as a task of its own, so it finishes (and its result is kept) even if the request that started it
/// goes away.
fn spawn_run(toolbox: Arc<Toolbox>, tool: ToolName, input: serde_json::Value) -> Run {
    let task = tokio::spawn(async move { toolbox.execute(tool, input).await });
    async move {
        Arc::new(match task.await {
            Ok(result) => result,
            Err(e) => ToolResult::error(format!("{} failed inside the sandbox daemon: {e}", tool.as_str())),
        })
    }
    .boxed()
    .shared()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use serde_json::json;

    fn toolbox(dir: &tempfile::TempDir) -> Arc<Toolbox> {
        Arc::new(Toolbox::new(dir.path().to_path_buf(), Limits::default()))
    }

    #[tokio::test]
    async fn a_call_named_twice_runs_once_and_both_get_its_result() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let input = json!({"command": "sleep 0.3; echo ran >> count; wc -l < count"});
        let (first, answer) = calls
            .start(&toolbox, ToolName::Bash, input.clone(), Some("toolu_1"), Some(1))
            .unwrap();
        assert_eq!(answer, Answer::Ran);
        let (second, answer) = calls
            .start(&toolbox, ToolName::Bash, input.clone(), Some("toolu_1"), Some(2))
            .unwrap();
        assert_eq!(answer, Answer::Joined);
        let (a, b) = tokio::join!(first, second);
        assert_eq!(a.text().trim(), "1");
        assert_eq!(a, b);
        let (third, answer) = calls
            .start(&toolbox, ToolName::Bash, input, Some("toolu_1"), Some(2))
            .unwrap();
        assert_eq!(answer, Answer::Joined);
        assert_eq!(third.await.text().trim(), "1");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("count")).unwrap(),
            "ran\n"
        );
    }

    #[tokio::test]
    async fn an_older_fencing_token_is_refused_once_a_newer_was_seen() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let write = |name: &str| json!({"file_path": name, "content": "x"});
        calls
            .start(&toolbox, ToolName::Write, write("a"), Some("t1"), Some(7))
            .unwrap()
            .0
            .await;
        let refused = calls
            .start(&toolbox, ToolName::Write, write("b"), Some("t2"), Some(6))
            .err();
        assert_eq!(refused, Some(Refusal::Fenced { sent: 6, newest: 7 }));
        assert!(!dir.path().join("b").exists());
        calls
            .start(&toolbox, ToolName::Write, write("c"), Some("t3"), Some(7))
            .unwrap()
            .0
            .await;
        calls
            .start(&toolbox, ToolName::Write, write("d"), None, None)
            .unwrap()
            .0
            .await;
        assert!(dir.path().join("c").exists() && dir.path().join("d").exists());
    }

    #[tokio::test]
    async fn an_id_reused_for_another_call_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let read = json!({"file_path": "x"});
        calls
            .start(&toolbox, ToolName::Read, read, Some("t"), None)
            .unwrap()
            .0
            .await;
        let other = calls
            .start(
                &toolbox,
                ToolName::Read,
                json!({"file_path": "y"}),
                Some("t"),
                None,
            )
            .err();
        assert_eq!(other, Some(Refusal::Reused("t".into())));
    }

    #[tokio::test]
    async fn only_the_last_calls_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let input = json!({"pattern": "*"});
        for i in 0..=KEPT_CALLS {
            calls
                .start(
                    &toolbox,
                    ToolName::Glob,
                    input.clone(),
                    Some(&format!("t{i}")),
                    None,
                )
                .unwrap()
                .0
                .await;
        }
        let (_, first) = calls
            .start(&toolbox, ToolName::Glob, input.clone(), Some("t0"), None)
            .unwrap();
        let (_, last) = calls
            .start(
                &toolbox,
                ToolName::Glob,
                input,
                Some(&format!("t{KEPT_CALLS}")),
                None,
            )
            .unwrap();
        assert_eq!((first, last), (Answer::Ran, Answer::Joined));
    }
}
