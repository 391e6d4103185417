//! A turn that hits a cap of the session log ([`corral_session::SessionCaps`] or the largest event): it ends with
//! a `session.error` naming the cap and the idle status, written into the reserve kept for closing events, and the
//! wake-up is acknowledged. The run never retries what can only fail again, so a full session costs one error, not
//! a crash loop; further client events are refused by the gateway with a 400.

use corral_api::events::{RetryStatus, StopReason, error_types};
use corral_session::Error as LogError;

use super::{Outcome, Run, Stop};
use crate::engine::{events, scan::scan};

/// Whether `err` is a cap of the session log, which no retry can get past.
pub(super) fn is_cap(err: &LogError) -> bool {
    matches!(err, LogError::SessionFull { .. } | LogError::EventTooLarge { .. })
}

impl Run<'_> {
    /// Ends the turn after an append refused by a cap (`err`).
    pub(super) async fn close_on_cap(&mut self, err: LogError) -> Stop {
        tracing::warn!(session = self.session, error = %err, "the session log refused an append; ending the turn");
        let mut batch = Vec::new();
        if let Some(span) = scan(self.view.entries(), &self.agent.tools).open_span {
            batch.push(events::span_end(&span.id, Default::default(), true, None));
        }
        batch.push(events::error(
            error_types::UNKNOWN,
            format!("the turn was ended: {err}"),
            RetryStatus::Exhausted,
        ));
        batch.push(events::idle(StopReason::RetriesExhausted));
        let closed = self
            .engine
            .store
            .session(self.namespace, self.session)
            .append_closing(self.token, batch)
            .await;
        match closed {
            Ok(_) => {
                if self.view.refresh().await.is_ok() {
                    self.start_status_report();
                }
                Stop::Outcome(Outcome::Idle)
            }
            Err(LogError::Fenced { .. }) => Stop::Outcome(Outcome::Lost),
            Err(err) if err.is_transient() => Stop::Outcome(Outcome::Failed(err.to_string())),
            Err(err) => {
                // Even the reserve is spent: nothing more can be written; stop without looping.
                tracing::error!(session = self.session, error = %err, "cannot write the closing events of a full session");
                Stop::Outcome(Outcome::Idle)
            }
        }
    }
}
