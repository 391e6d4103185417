//! `send`, `interrupt`, `chat` and `run`: sending messages and watching the turn they start.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    args::{ChatArgs, NewSession, Output, RunArgs, SendArgs},
    body,
    client::Client,
    config::FileConfig,
    error::{CliError, Result},
    events::print_event,
    input::{Line, Reader},
    output, render,
    resources::id_segment,
    slash::{self, Slash, Typed},
    stream::{Follower, Start},
};

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// The session is idle; the stop reason's type.
    Idle(String),
    /// The session was terminated or deleted.
    Gone,
}

/// What a turn's model requests used.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Usage {
    requests: u64,
    input: u64,
    output: u64,
}

impl Usage {
    /// Adds a `span.model_request_end`.
    fn add(&mut self, event: &Value) {
        let n = |k: &str| {
            event
                .pointer(&format!("/model_usage/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        self.requests += 1;
        self.input += n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens");
        self.output += n("output_tokens");
    }

    /// `(end_turn · 2 model requests · 900 tokens in, 65 out · 3.2s)`.
    fn line(&self, reason: &str, took: Duration) -> String {
        let plural = if self.requests == 1 { "" } else { "s" };
        format!(
            "({reason} · {} model request{plural} · {} tokens in, {} out · {:.1}s)",
            self.requests,
            self.input,
            self.output,
            took.as_secs_f64()
        )
    }
}

/// Sends events and returns the stored ones.
async fn send_events(client: &Client, session: &str, body: &Value) -> Result<Vec<Value>> {
    let res = client
        .post(&format!("/v1/sessions/{session}/events"), body)
        .await?;
    Ok(res
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn first_id(events: &[Value]) -> Option<String> {
    events
        .first()
        .and_then(|e| e.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn interrupt_signal() -> Result<Signal> {
    signal(SignalKind::interrupt()).map_err(|e| CliError::Other(format!("listening for Ctrl-C: {e}")))
}

fn spinner(format: Output) -> ProgressBar {
    if !format.human() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner:.cyan} {msg:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Streams events until the turn started by the event `mine` is over: an idle (or terminated, deleted) that
/// comes after `mine`'s echo. Shows a spinner while the agent works. The first Ctrl-C sends `user.interrupt`, the
/// second gives up.
async fn stream_turn(
    client: &Client,
    session: &str,
    follower: &mut Follower,
    format: Output,
    mine: &str,
    show_own: bool,
    sigint: &mut Signal,
) -> Result<TurnEnd> {
    let pb = spinner(format);
    pb.set_message("thinking…");
    let mut seen_mine = false;
    let mut usage = Usage::default();
    let started = std::time::Instant::now();
    let mut interrupted = false;
    let end = loop {
        let item = tokio::select! {
            item = follower.next() => item,
            _ = sigint.recv() => {
                if interrupted {
                    pb.finish_and_clear();
                    return Err(CliError::Interrupted);
                }
                interrupted = true;
                pb.set_message("interrupting… (Ctrl-C again to quit)");
                send_events(client, session, &json!({ "events": [{ "type": "user.interrupt" }] })).await?;
                continue;
            }
        };
        let Some(item) = item? else {
            break TurnEnd::Gone;
        };
        let event = &item.event;
        let ty = render::kind(event);
        let id = event.get("id").and_then(Value::as_str).unwrap_or_default();
        let own = id == mine;
        if own {
            seen_mine = true;
        }
        if format.human() {
            if (!own || show_own)
                && let Some(text) = render::transcript(event)
            {
                pb.suspend(|| output::line(&text))?;
            }
            match ty {
                "agent.tool_use" | "agent.mcp_tool_use" => {
                    pb.set_message(format!(
                        "running {}…",
                        event.get("name").and_then(Value::as_str).unwrap_or("tool")
                    ));
                }
                "agent.tool_result"
                | "agent.mcp_tool_result"
                | "span.model_request_start"
                | "agent.thinking" => {
                    pb.set_message("thinking…");
                }
                _ => {}
            }
        } else {
            print_event(format, event)?;
        }
        if seen_mine && ty == "span.model_request_end" {
            usage.add(event);
        }
        if matches!(ty, "session.status_terminated" | "session.deleted") {
            break TurnEnd::Gone;
        }
        if seen_mine && ty == "session.status_idle" {
            break TurnEnd::Idle(
                event
                    .pointer("/stop_reason/type")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_owned(),
            );
        }
    };
    pb.finish_and_clear();
    if format.human()
        && let TurnEnd::Idle(reason) = &end
    {
        eprintln!("{}", console::style(usage.line(reason, started.elapsed())).dim());
    }
    Ok(end)
}

/// `corral send`.
pub async fn send(client: &Client, format: Output, args: SendArgs) -> Result<()> {
    let session = id_segment(&args.session)?.to_owned();
    let text = body::message_text(&args.text)?;
    if !args.wait {
        let sent = send_events(client, &session, &body::user_message(&text)).await?;
        return match format {
            f if f.human() => {
                crate::out!("sent {} to {session}", first_id(&sent).unwrap_or_default());
                Ok(())
            }
            _ => output::data(format, &Value::Array(sent)),
        };
    }
    let mut sigint = interrupt_signal()?;
    let mut follower = Follower::open(client, &session, Start::Now).await?;
    let sent = send_events(client, &session, &body::user_message(&text)).await?;
    let mine = first_id(&sent).unwrap_or_default();
    finish(stream_turn(client, &session, &mut follower, format, &mine, false, &mut sigint).await?)
}

fn finish(end: TurnEnd) -> Result<()> {
    match end {
        TurnEnd::Idle(_) => Ok(()),
        TurnEnd::Gone => Err(CliError::Other(
            "the session ended (terminated or deleted)".into(),
        )),
    }
}

/// `corral interrupt`.
pub async fn interrupt(client: &Client, format: Output, session: &str) -> Result<()> {
    let session = id_segment(session)?;
    let sent = send_events(
        client,
        session,
        &json!({ "events": [{ "type": "user.interrupt" }] }),
    )
    .await?;
    match format {
        f if f.human() => {
            crate::out!("interrupted {session}");
            Ok(())
        }
        _ => output::data(format, &Value::Array(sent)),
    }
}

/// The agent and environment of a new session: the flags, else the config file's defaults.
fn new_session_body(new: &NewSession, defaults: &FileConfig) -> Result<Value> {
    let pick = |flag: &Option<String>, default: &Option<String>, what: &str, key: &str| -> Result<String> {
        let id = flag.clone().or_else(|| default.clone()).ok_or_else(|| {
            CliError::Input(format!(
                "no {what} for the new session: pass --{key} or run `corral config set {what} <id>`"
            ))
        })?;
        id_segment(&id)?;
        Ok(id)
    };
    let agent = pick(&new.agent, &defaults.agent, "agent", "agent")?;
    let environment = pick(&new.environment, &defaults.environment, "environment", "env")?;
    let mut body = json!({ "agent": agent, "environment_id": environment });
    if let Some(title) = &new.title {
        body["title"] = Value::String(title.clone());
    }
    Ok(body)
}

/// Creates the session and returns its id (said on standard error).
async fn start_session(client: &Client, body: &Value) -> Result<String> {
    let created = client.post("/v1/sessions", body).await?;
    let session = created
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Other("the gateway's new session has no id".into()))?
        .to_owned();
    eprintln!("{}", console::style(format!("session {session}")).dim());
    Ok(session)
}

/// `corral run`.
pub async fn run(client: &Client, format: Output, args: RunArgs, defaults: &FileConfig) -> Result<()> {
    let text = body::message_text(&args.prompt)?;
    let create = new_session_body(&args.new, defaults)?;
    let mut sigint = interrupt_signal()?;
    let session = start_session(client, &create).await?;
    let mut follower = Follower::open(client, &session, Start::Now).await?;
    let sent = send_events(client, &session, &body::user_message(&text)).await?;
    let mine = first_id(&sent).unwrap_or_default();
    finish(stream_turn(client, &session, &mut follower, format, &mine, false, &mut sigint).await?)
}

/// `corral chat`.
pub async fn chat(client: &Client, format: Output, args: ChatArgs, defaults: &FileConfig) -> Result<()> {
    let mut sigint = interrupt_signal()?;
    let session = match &args.session {
        Some(id) => id_segment(id)?.to_owned(),
        None => start_session(client, &new_session_body(&args.new, defaults)?).await?,
    };
    let info = client.get(&format!("/v1/sessions/{session}"), &[]).await?;
    let mut reader = Reader::start();
    if reader.interactive {
        let agent = info
            .pointer("/agent/name")
            .and_then(Value::as_str)
            .unwrap_or("the agent");
        eprintln!(
            "{}",
            console::style(format!(
                "Chatting with {agent} in {session} ({}). Ctrl-C interrupts a turn, Ctrl-D quits, /help lists commands.",
                info.get("status").and_then(Value::as_str).unwrap_or("?")
            ))
            .dim()
        );
    }
    let mut follower = Follower::open(client, &session, Start::Now).await?;
    let prompt = console::style("› ").green().bold().to_string();
    loop {
        let line = tokio::select! {
            line = reader.line(&prompt) => line,
            _ = sigint.recv() => return Err(CliError::Interrupted),
        };
        let text = match line {
            Line::Text(t) if t.trim().is_empty() => continue,
            Line::Text(t) => match slash::parse(&t) {
                Typed::Message(text) => text,
                Typed::Command(Slash::Quit) => return Ok(()),
                Typed::Command(cmd) => {
                    // A mistyped command is said, and the chat goes on.
                    if let Err(e) = slash::run(client, &session, &cmd).await {
                        match e {
                            CliError::Input(msg) => eprintln!("{}", console::style(msg).yellow()),
                            other => return Err(other),
                        }
                    }
                    continue;
                }
            },
            Line::Eof => return Ok(()),
            Line::Interrupted => return Err(CliError::Interrupted),
            Line::Failed(e) => return Err(CliError::Other(format!("reading input: {e}"))),
        };
        let sent = send_events(client, &session, &body::user_message(&text)).await?;
        let mine = first_id(&sent).unwrap_or_default();
        // On a terminal the person saw what they typed; from a pipe, show the stored message.
        let show_own = !reader.interactive;
        match stream_turn(
            client,
            &session,
            &mut follower,
            format,
            &mine,
            show_own,
            &mut sigint,
        )
        .await?
        {
            TurnEnd::Idle(_) => {}
            TurnEnd::Gone => return finish(TurnEnd::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sessions_take_flags_over_the_config_defaults() {
        let defaults = FileConfig {
            agent: Some("agent-default".into()),
            environment: Some("env-default".into()),
            ..FileConfig::default()
        };
        let none = NewSession {
            agent: None,
            environment: None,
            title: None,
        };
        let body = new_session_body(&none, &defaults).expect("defaults suffice");
        assert_eq!(
            body,
            json!({ "agent": "agent-default", "environment_id": "env-default" })
        );
        let flags = NewSession {
            agent: Some("agent-flag".into()),
            environment: None,
            title: Some("t".into()),
        };
        let body = new_session_body(&flags, &defaults).expect("flags and defaults");
        assert_eq!(
            body,
            json!({ "agent": "agent-flag", "environment_id": "env-default", "title": "t" })
        );
        let err = new_session_body(&none, &FileConfig::default()).expect_err("nothing set");
        assert!(err.to_string().contains("corral config set agent"), "{err}");
        let bad = NewSession {
            agent: Some("a/../b".into()),
            environment: Some("e".into()),
            title: None,
        };
        assert!(new_session_body(&bad, &defaults).is_err());
    }

    #[test]
    fn usage_adds_up_model_requests() {
        let mut u = Usage::default();
        u.add(&json!({ "type": "span.model_request_end", "model_usage": {
            "input_tokens": 20, "output_tokens": 38, "cache_read_input_tokens": 400, "cache_creation_input_tokens": 0 } }));
        u.add(&json!({ "type": "span.model_request_end", "model_usage": { "input_tokens": 80, "output_tokens": 27 } }));
        assert_eq!(
            u.line("end_turn", Duration::from_millis(3240)),
            "(end_turn · 2 model requests · 500 tokens in, 65 out · 3.2s)"
        );
    }
}
