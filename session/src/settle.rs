//! Client appends whose outcome is never left unknown while Redis can be asked.
//!
//! A command that timed out, or whose connection dropped after it was sent, may or may not have run. Every client
//! append therefore carries an idempotency key (the client's, or one generated here), and an append whose outcome is
//! unknown is repeated with the same key: the append script either finds its idempotency record (it had landed:
//! the first run's events come back) or appends now (it had not). Either way the events are stored exactly once.

use std::time::Duration;

use tokio::time::Instant;

use crate::{Appended, NewEvent, Result, SessionLog};

/// The first pause before repeating an append whose outcome is unknown; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between repeats.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long the record of an append made with a generated key is kept at least: only repeats of this process's
/// own attempts use it.
const MIN_GENERATED_WINDOW: Duration = Duration::from_secs(60);

/// A fresh idempotency key for a client append that came without one: random, so no client can name it.
pub fn generated_key() -> String {
    format!("corral-generated:{}", ulid::Ulid::new())
}

impl SessionLog {
    /// Appends client events with their wake-up like [`SessionLog::append_user_events`], and settles an unknown
    /// outcome: when Redis times out or the connection drops, the same append is repeated with the same idempotency
    /// key (`idempotency_key`, or a generated one) until Redis answers or `within` has passed.
    ///
    /// So `Ok` means stored exactly once, and an error means nothing was stored, unless Redis stayed unreachable for
    /// all of `within` after a command that may have run ([`crate::Error::is_transient`]): only then is the outcome
    /// unknown. [`Appended::repeat`] is set when the events were stored earlier, by a client's earlier request with
    /// the same key or by an attempt of this call whose answer was lost.
    pub async fn append_user_events_settled(
        &self,
        events: Vec<NewEvent>,
        idempotency_key: Option<&str>,
        within: Duration,
    ) -> Result<Appended> {
        let generated;
        let (key, window) = match idempotency_key.filter(|k| !k.is_empty()) {
            Some(key) => (key, None),
            None => {
                generated = generated_key();
                (generated.as_str(), Some((within * 2).max(MIN_GENERATED_WINDOW)))
            }
        };
        let deadline = Instant::now() + within;
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1u32;
        loop {
            match self.append_user_events_within(events.clone(), key, window).await {
                Ok(appended) => {
                    if attempt > 1 {
                        tracing::info!(
                            session = %self.session,
                            attempt,
                            landed_before = appended.repeat,
                            "settled a client append whose outcome was unknown"
                        );
                    }
                    return Ok(appended);
                }
                Err(err) if err.is_transient() && Instant::now() + pause < deadline => {
                    tracing::warn!(
                        session = %self.session,
                        attempt,
                        error = %err,
                        "client append outcome unknown; repeating it with the same idempotency key"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}
