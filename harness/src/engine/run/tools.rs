//! The tool calls of a run: connecting the agent's MCP servers, getting the sandbox ready up front, and running one
//! armed call through the [`ToolRunner`] that serves it.

use std::time::Instant;

use corral_session::NewEvent;
use tracing::Instrument;

use super::sandbox_wait::announce_sandbox_wait;
use super::{Outcome, Run, Stop};
use crate::engine::events;
use crate::engine::scan::{ToolUse, UseKind};
use crate::tools::{ToolCall, ToolRunner};

impl Run<'_> {
    /// Connects the agent's MCP servers (once per run): their tools join the agent's, and each server that is not
    /// available is reported with a `session.error`.
    pub(super) async fn ensure_mcp(&mut self) -> Result<(), Stop> {
        if self.mcp.is_some() {
            return Ok(());
        }
        let connections = self
            .engine
            .mcp
            .connect(self.namespace, self.session, &self.agent.spec)
            .await;
        for (server, tools) in &connections.tools {
            self.agent.tools.add_mcp_tools(&self.agent.spec, server, tools);
        }
        let errors: Vec<NewEvent> = connections
            .failures
            .iter()
            .map(|f| events::mcp_error(f.kind.error_type(), &f.server, f.message.clone()))
            .collect();
        self.mcp = Some(connections);
        if !errors.is_empty() {
            self.append(errors).await?;
        }
        Ok(())
    }

    /// With eager provisioning, waits (once per run) until the session's sandbox is ready, so the model is called
    /// only then. A sandbox that cannot be had is logged and left to the first tool call, which reports it.
    pub(super) async fn ensure_sandbox(&mut self) -> Result<(), Stop> {
        if !self.agent.sandbox_up_front || self.sandbox_prepared {
            return Ok(());
        }
        let prepare = self
            .engine
            .tools
            .prepare(self.namespace, self.session)
            .instrument(tracing::info_span!("sandbox_wait"));
        let announce = announce_sandbox_wait(
            self.engine,
            self.namespace,
            self.session,
            self.token,
            &self.sandbox_wait_told,
        );
        let outcome = tokio::select! {
            outcome = prepare => outcome,
            never = announce => match never {},
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        if let Err(reason) = outcome {
            tracing::warn!(%reason, "the sandbox asked for up front is not ready; the first tool call will ask again");
        }
        self.sandbox_prepared = true;
        Ok(())
    }

    /// Answers a built-in call another run started and never answered: with the result of that run when the
    /// session's sandbox has it (waiting for it if it still runs), else as interrupted. Nothing runs again.
    pub(super) async fn recover_tool(&mut self, tool: ToolUse) -> Result<(), Stop> {
        let id = tool.id.to_string();
        let call = tool_call(
            self.namespace,
            self.session,
            self.token.0,
            &tool,
            &id,
            &self.agent.skills,
        );
        let recovered = tokio::select! {
            recovered = self.engine.tools.recover(call) => recovered,
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        let event = match recovered {
            Some(output) => {
                tracing::info!(tool_use_id = %id, "recovered the result of a call a lost replica started");
                events::result_for(false, &tool.id, output.content, output.is_error)
            }
            None => events::error_for(false, &tool.id, events::INTERRUPTED_BY_RESTART),
        };
        self.append(vec![event]).await
    }

    /// Runs one armed tool call the harness runs, a built-in tool in the session's sandbox or an MCP server's tool
    /// through the run's connections (one [`ToolRunner`] each), and appends its result.
    pub(super) async fn run_tool(&mut self, tool: ToolUse) -> Result<(), Stop> {
        let mcp = matches!(tool.kind, UseKind::Mcp(_));
        if mcp {
            self.ensure_mcp().await?;
        }
        let seen = self.view.last_cursor();
        if self.interrupts.newer_than(seen) {
            return Ok(());
        }
        let engine = self.engine;
        let runner: &dyn ToolRunner = match &self.mcp {
            Some(connections) if mcp => connections,
            _ => engine.tools.as_ref(),
        };
        let id = tool.id.to_string();
        let call = tool_call(
            self.namespace,
            self.session,
            self.token.0,
            &tool,
            &id,
            &self.agent.skills,
        );
        let may_run = tokio::select! {
            may_run = self.gate.may_run_tool() => may_run,
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        if !may_run {
            tracing::warn!(tool_use_id = %id, "this replica's lease may be lost: not starting the tool");
            return Err(Stop::Outcome(Outcome::Lost));
        }
        let started = Instant::now();
        let tool_span = tracing::info_span!(
            "tool_call",
            tool = %tool.name,
            tool_use_id = %id,
            is_error = tracing::field::Empty,
        );
        let announce = async {
            if mcp {
                std::future::pending().await
            } else {
                announce_sandbox_wait(
                    engine,
                    self.namespace,
                    self.session,
                    self.token,
                    &self.sandbox_wait_told,
                )
                .await
            }
        };
        let output = tokio::select! {
            output = runner.execute(call).instrument(tool_span.clone()) => output,
            never = announce => match never {},
            () = self.interrupts.wait_newer_than(seen) => {
                engine.metrics.tool_call(&tool.name, "interrupted", None);
                return Ok(());
            }
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        tool_span.record("is_error", output.is_error);
        let outcome = if output.is_error { "error" } else { "ok" };
        engine
            .metrics
            .tool_call(&tool.name, outcome, Some(started.elapsed().as_secs_f64()));
        self.append(vec![events::result_for(
            mcp,
            &tool.id,
            output.content,
            output.is_error,
        )])
        .await?;
        self.armed.remove(&tool.id);
        Ok(())
    }
}

/// The runner's view of `tool` (whose id is `id`) in session `namespace/session`, under fencing token `token`.
fn tool_call<'c>(
    namespace: &'c str,
    session: &'c str,
    token: u64,
    tool: &'c ToolUse,
    id: &'c str,
    skills: &'c [std::sync::Arc<crate::skills::LoadedSkill>],
) -> ToolCall<'c> {
    ToolCall {
        namespace,
        session,
        tool_use_id: id,
        name: &tool.name,
        input: &tool.input,
        server: tool.server.as_deref(),
        fencing_token: token,
        skills,
    }
}
