//! The calls this daemon ran, so that no tool runs twice and no stale harness replica starts one.
//!
//! A harness replica that lost its session's lease (a partition, a stalled process) may still be running a tool
//! when another replica takes the session over. Three rules keep that tool from running twice:
//!
//! - **One run per `tool_use_id`.** A call is run once, as a task of its own that outlives the request that started
//!   it; a request naming the same `tool_use_id` (a retry after a broken connection) joins the run in flight or gets
//!   its kept result. The last [`KEPT_CALLS`] calls are kept.
//! - **Recovery never starts anything.** The new holder, finding a call started and unanswered in the log, asks
//!   with [`Mode::Recover`]: it gets that run's result if this daemon ran it, and a refusal otherwise (the harness
//!   then tells the model the call was interrupted). Its fencing token is recorded either way.
//! - **Fencing tokens.** Every lease of a session carries a larger fencing token than the one before. The daemon
//!   remembers the largest it has seen and refuses a call carrying a smaller one: the replica that sent it lost the
//!   session. (A daemon that restarts forgets; its pod's tools were killed with it.)
//!
//! The harness (a caller sending fencing tokens) runs one call of a session at a time, so a new call from it
//! arriving while a `bash` run of another call still holds the shell means that run was abandoned (the client interrupted it, or its replica lost the session):
//! its command is killed so that the new call does not wait behind it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use corral_sandbox_protocol::ToolResult;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};

use crate::tools::{ToolName, Toolbox};

/// How many calls (in flight or finished) are kept for joining. A result is at most the daemon's output limit
/// (64 KiB by default) and a call's input is kept as its SHA-256, so this bounds the memory kept to a few MiB.
pub const KEPT_CALLS: usize = 64;

/// A run of a call, which any number of requests may await.
pub type Run = Shared<BoxFuture<'static, Arc<ToolResult>>>;

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
    /// A [`Mode::Recover`] request for a call this daemon never ran (or no longer keeps).
    #[error(
        "this sandbox has no run of tool_use_id {0:?}: it never started here, or it is too old to be kept"
    )]
    Unknown(String),
}

/// What a request asks of [`Calls::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run the call, or join its run.
    Run,
    /// Only join an earlier run of the call (or get its kept result); never start one.
    Recover,
}

/// How a call was answered, for the daemon's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This request started the run.
    Ran,
    /// This request joined a run another request had started (in flight or finished).
    Joined,
}

/// One request for a call.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The tool.
    pub tool: ToolName,
    /// Its input.
    pub input: serde_json::Value,
    /// The `agent.tool_use` it answers, when the caller named it.
    pub tool_use_id: Option<&'a str>,
    /// The caller's fencing token, when it sent one.
    pub fencing_token: Option<u64>,
    /// Run, or only recover.
    pub mode: Mode,
}

struct Kept {
    /// SHA-256 of the tool's name and its input: a `write` input may be many MiB.
    call: [u8; 32],
    run: Run,
}

#[derive(Default)]
struct State {
    newest_token: u64,
    by_id: HashMap<String, Kept>,
    order: VecDeque<String>,
    /// The call whose `bash` run holds the shell now (`""` for a call without an id).
    shell_busy: Option<String>,
}

/// The daemon's record of calls and fencing tokens. Cheap to share.
#[derive(Clone, Default)]
pub struct Calls {
    state: Arc<Mutex<State>>,
}

impl Calls {
    /// Checks the request's fencing token and returns the run answering it: a new one on `toolbox`, or the run an
    /// earlier request with the same `tool_use_id` started.
    pub fn start(&self, toolbox: &Arc<Toolbox>, request: Request<'_>) -> Result<(Run, Answer), Refusal> {
        let call = fingerprint(request.tool, &request.input);
        let mut state = self.lock();
        if let Some(sent) = request.fencing_token {
            if sent < state.newest_token {
                return Err(Refusal::Fenced {
                    sent,
                    newest: state.newest_token,
                });
            }
            state.newest_token = sent;
        }
        if let Some(id) = request.tool_use_id
            && let Some(kept) = state.by_id.get(id)
        {
            if kept.call != call {
                return Err(Refusal::Reused(id.to_owned()));
            }
            return Ok((kept.run.clone(), Answer::Joined));
        }
        if request.mode == Mode::Recover {
            return Err(Refusal::Unknown(
                request.tool_use_id.unwrap_or_default().to_owned(),
            ));
        }
        // Only a harness (it sends a token) runs one call at a time; other clients may run calls side by side.
        if let Some(abandoned) = state
            .shell_busy
            .as_ref()
            .filter(|_| request.fencing_token.is_some())
        {
            tracing::info!(
                abandoned = abandoned.as_str(),
                "a new call came while an earlier bash run holds the shell: killing the abandoned command"
            );
            toolbox.shell().interrupt();
        }
        let id = request.tool_use_id.unwrap_or_default();
        if request.tool == ToolName::Bash {
            state.shell_busy = Some(id.to_owned());
        }
        let run = self.spawn_run(toolbox.clone(), request.tool, request.input, id);
        if let Some(id) = request.tool_use_id {
            if state.order.len() >= KEPT_CALLS
                && let Some(oldest) = state.order.pop_front()
            {
                state.by_id.remove(&oldest);
            }
            state.order.push_back(id.to_owned());
            state.by_id.insert(
                id.to_owned(),
                Kept {
                    call,
                    run: run.clone(),
                },
            );
        }
        Ok((run, Answer::Ran))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the tool as a task of its own, so it finishes (and its result is kept) even if the request that started
    /// it goes away; a `bash` run frees the shell when it ends.
    fn spawn_run(&self, toolbox: Arc<Toolbox>, tool: ToolName, input: serde_json::Value, id: &str) -> Run {
        let calls = self.clone();
        let id = id.to_owned();
        let task = tokio::spawn(async move {
            let result = toolbox.execute(tool, input).await;
            if tool == ToolName::Bash {
                let mut state = calls.lock();
                if state.shell_busy.as_deref() == Some(id.as_str()) {
                    state.shell_busy = None;
                }
            }
            result
        });
        async move {
            Arc::new(match task.await {
                Ok(result) => result,
                Err(e) => {
                    ToolResult::error(format!("{} failed inside the sandbox daemon: {e}", tool.as_str()))
                }
            })
        }
        .boxed()
        .shared()
    }
}

fn fingerprint(tool: ToolName, input: &serde_json::Value) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(tool.as_str().as_bytes());
    hash.update([0]);
    hash.update(serde_json::to_vec(input).unwrap_or_default());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Limits;
    use serde_json::json;

    fn toolbox(dir: &tempfile::TempDir) -> Arc<Toolbox> {
        Arc::new(Toolbox::new(dir.path().to_path_buf(), Limits::default()))
    }

    fn request<'a>(
        tool: ToolName,
        input: serde_json::Value,
        id: Option<&'a str>,
        token: Option<u64>,
    ) -> Request<'a> {
        Request {
            tool,
            input,
            tool_use_id: id,
            fencing_token: token,
            mode: Mode::Run,
        }
    }

    fn recover(id: &str, input: serde_json::Value, token: u64) -> Request<'_> {
        Request {
            mode: Mode::Recover,
            ..request(ToolName::Bash, input, Some(id), Some(token))
        }
    }

    #[tokio::test]
    async fn a_call_named_twice_runs_once_and_both_get_its_result() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let input = json!({"command": "sleep 0.3; echo ran >> count; wc -l < count"});
        let (first, answer) = calls
            .start(
                &toolbox,
                request(ToolName::Bash, input.clone(), Some("toolu_1"), Some(1)),
            )
            .unwrap();
        assert_eq!(answer, Answer::Ran);
        let (second, answer) = calls
            .start(&toolbox, recover("toolu_1", input.clone(), 2))
            .unwrap();
        assert_eq!(answer, Answer::Joined);
        let (a, b) = tokio::join!(first, second);
        assert_eq!(a.text().trim(), "1");
        assert_eq!(a, b);
        let (third, answer) = calls
            .start(&toolbox, request(ToolName::Bash, input, Some("toolu_1"), Some(2)))
            .unwrap();
        assert_eq!(answer, Answer::Joined);
        assert_eq!(third.await.text().trim(), "1");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("count")).unwrap(),
            "ran\n"
        );
    }

    #[tokio::test]
    async fn recovering_a_call_never_run_here_starts_nothing_but_fences() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let input = json!({"command": "touch ran"});
        let refused = calls.start(&toolbox, recover("toolu_9", input.clone(), 5)).err();
        assert_eq!(refused, Some(Refusal::Unknown("toolu_9".into())));
        let stale = calls
            .start(&toolbox, request(ToolName::Bash, input, Some("toolu_9"), Some(4)))
            .err();
        assert_eq!(stale, Some(Refusal::Fenced { sent: 4, newest: 5 }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!dir.path().join("ran").exists());
    }

    #[tokio::test]
    async fn an_older_fencing_token_is_refused_once_a_newer_was_seen() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let write = |name: &str| json!({"file_path": name, "content": "x"});
        let run = |id, name, token| request(ToolName::Write, write(name), id, token);
        calls
            .start(&toolbox, run(Some("t1"), "a", Some(7)))
            .unwrap()
            .0
            .await;
        let refused = calls.start(&toolbox, run(Some("t2"), "b", Some(6))).err();
        assert_eq!(refused, Some(Refusal::Fenced { sent: 6, newest: 7 }));
        assert!(!dir.path().join("b").exists());
        calls
            .start(&toolbox, run(Some("t3"), "c", Some(7)))
            .unwrap()
            .0
            .await;
        calls.start(&toolbox, run(None, "d", None)).unwrap().0.await;
        assert!(dir.path().join("c").exists() && dir.path().join("d").exists());
    }

    #[tokio::test]
    async fn an_id_reused_for_another_call_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let read = |path: &str| request(ToolName::Read, json!({"file_path": path}), Some("t"), None);
        calls.start(&toolbox, read("x")).unwrap().0.await;
        let other = calls.start(&toolbox, read("y")).err();
        assert_eq!(other, Some(Refusal::Reused("t".into())));
    }

    /// The harness drops a call on `user.interrupt`; its command must not keep the shell from the next call.
    #[tokio::test]
    async fn a_new_call_kills_the_bash_run_its_caller_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let (abandoned, _) = calls
            .start(
                &toolbox,
                request(
                    ToolName::Bash,
                    json!({"command": "export KEPT=yes; sleep 30"}),
                    Some("t1"),
                    Some(1),
                ),
            )
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let (next, _) = calls
            .start(
                &toolbox,
                request(
                    ToolName::Bash,
                    json!({"command": "echo next"}),
                    Some("t2"),
                    Some(1),
                ),
            )
            .unwrap();
        assert_eq!(next.await.text().trim_end().lines().last(), Some("next"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the abandoned command"
        );
        assert!(abandoned.await.is_error);
    }

    #[tokio::test]
    async fn only_the_last_calls_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let toolbox = toolbox(&dir);
        let calls = Calls::default();
        let glob = |id| request(ToolName::Glob, json!({"pattern": "*"}), Some(id), None);
        let ids: Vec<String> = (0..=KEPT_CALLS).map(|i| format!("t{i}")).collect();
        for id in &ids {
            calls.start(&toolbox, glob(id)).unwrap().0.await;
        }
        let (_, first) = calls.start(&toolbox, glob(&ids[0])).unwrap();
        let (_, last) = calls.start(&toolbox, glob(&ids[KEPT_CALLS])).unwrap();
        assert_eq!((first, last), (Answer::Ran, Answer::Joined));
    }
}
