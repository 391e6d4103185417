//! A session's turn as the gateway would start it, for tests and benchmarks that play the gateway's part: wait for
//! the Session to be Ready, append a user message to its log, enqueue the wake-up, and read the log until the turn
//! ends.

use std::time::Duration;

use corral_api::{Session, conditions, events::EventBody};
use corral_session::{Order, Store, StoredEvent};
use kube::Api;

use crate::wait;

/// Whether the Session's `Ready` condition is true.
pub fn session_ready(session: &Session) -> bool {
    session
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, conditions::types::READY))
}

/// Waits until Session `name` is Ready; answers it as it was then.
pub async fn wait_session_ready(
    sessions: &Api<Session>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Session> {
    wait::object(sessions, name, timeout, "session Ready", session_ready).await
}

/// Appends a user message of `text` to the log of session `session` in `namespace`, enqueues its wake-up, and
/// answers the log's events once it holds `session.status_idle` (the turn ended).
pub async fn run_turn(
    store: &Store,
    namespace: &str,
    session: &str,
    text: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<StoredEvent>> {
    let log = store.session(namespace, session);
    let message: EventBody = serde_json::from_value(serde_json::json!({
        "type": "user.message", "content": [{"type": "text", "text": text}]
    }))?;
    log.append_user([message]).await?;
    store.enqueue(namespace, session).await?;
    wait::until("the turn to end", timeout, || async {
        let page = log.range(None, 1000, Order::Asc).await?;
        let done = page
            .events
            .iter()
            .any(|e| e.event.body.type_name() == "session.status_idle");
        Ok(done.then_some(page.events))
    })
    .await
}
