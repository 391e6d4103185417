//! A run that starts inside a model call another process began (it crashed, or its replica was reaped, or it
//! handed the session back mid-call): it says so at once with `session.status_rescheduled`, so clients see the
//! takeover before the repeated call answers; and a call whose runs died [`MAX_RESUMES`] times is not made again
//! (the call itself, or what it returns, may be what kills the replicas), the turn ends with an error instead.

use corral_api::events::{EventBody, RetryStatus, StopReason, error_types};

use super::{Run, Stop};
use crate::engine::{events, scan::scan};

/// How many times a model call may be taken over mid-call before its turn ends with an error.
pub(super) const MAX_RESUMES: usize = 3;

impl Run<'_> {
    /// Marks a taken-over model call (see the module docs); nothing to do when no call is open.
    pub(super) async fn mark_resumed(&mut self) -> Result<(), Stop> {
        let Some(span) = scan(self.view.entries(), &self.agent.tools).open_span else {
            return Ok(());
        };
        let resumes = self.view.entries()[span.index + 1..]
            .iter()
            .filter(|e| matches!(e.body, EventBody::SessionStatusRescheduled(_)))
            .count();
        let batch = if resumes >= MAX_RESUMES {
            tracing::warn!(
                session = self.session,
                resumes,
                "a model call was cut off too often; ending its turn"
            );
            vec![
                events::span_end(&span.id, Default::default(), true, None),
                events::error(
                    error_types::UNKNOWN,
                    format!(
                        "the turn was ended: its model request was cut off {} times by the loss of the harness running it",
                        resumes + 1
                    ),
                    RetryStatus::Exhausted,
                ),
                events::idle(StopReason::RetriesExhausted),
            ]
        } else {
            vec![events::rescheduled()]
        };
        self.append(batch).await?;
        self.view.refresh().await?;
        Ok(())
    }
}
