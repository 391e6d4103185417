//! Telling the client, while a tool call waits for its sandbox, that no node can take the sandbox's pod yet: a
//! `session.error` with `retry_status: retrying` on the event stream, once per run, instead of minutes of silence.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use corral_api::events::{RetryStatus, error_types};
use corral_session::FencingToken;

use super::Engine;
use crate::engine::events;

/// How often a waiting call looks at why its sandbox is not ready.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Runs beside a wait for the session's sandbox and is dropped with it: appends one `session.error` (retrying)
/// when the runner reports the sandbox cannot be scheduled, unless `told` says the run did already. Appended under
/// the run's fencing token, so a replica that lost the session writes nothing.
pub(super) async fn announce_sandbox_wait(
    engine: &Engine,
    namespace: &str,
    session: &str,
    token: FencingToken,
    told: &AtomicBool,
) -> Infallible {
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        if told.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        let Some(reason) = engine.tools.sandbox_wait(namespace, session) else {
            continue;
        };
        let event = events::error(
            error_types::UNKNOWN,
            format!(
                "The session's sandbox cannot be scheduled yet ({reason}); the tool call waits for it and fails if \
                 it still cannot run."
            ),
            RetryStatus::Retrying,
        );
        match engine
            .store
            .session(namespace, session)
            .append(token, vec![event])
            .await
        {
            Ok(_) => {
                engine.metrics.events_appended.inc();
                told.store(true, Ordering::Relaxed);
            }
            Err(err) => tracing::warn!(%err, "cannot tell the client that the sandbox cannot be scheduled"),
        }
        return std::future::pending().await;
    }
}
