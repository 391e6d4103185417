//! Following a session's log while a model call or a tool call runs, to notice `user.interrupt` at once.

use std::time::Duration;

use corral_session::{Cursor, SessionLog};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A background follower that publishes the cursor of the newest `user.interrupt`. Stops when dropped.
#[derive(Debug)]
pub struct InterruptWatch {
    rx: watch::Receiver<Option<Cursor>>,
    task: JoinHandle<()>,
}

impl InterruptWatch {
    /// Follows `log` from `after`.
    pub fn start(log: SessionLog, after: Option<Cursor>) -> Self {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut cursor = after;
            loop {
                let mut follower = match log.follow(Some(cursor.unwrap_or(Cursor::START))).await {
                    Ok(f) => f,
                    Err(err) => {
                        tracing::debug!(error = %err, "interrupt watch: cannot follow the log; retrying");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                };
                loop {
                    match follower.next().await {
                        Ok(event) => {
                            cursor = Some(event.cursor);
                            if matches!(event.event.body, corral_api::events::EventBody::UserInterrupt(_)) {
                                tx.send_replace(Some(event.cursor));
                            }
                        }
                        Err(err) => {
                            tracing::debug!(error = %err, "interrupt watch: follow failed; reconnecting");
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            break;
                        }
                    }
                }
            }
        });
        Self { rx, task }
    }

    /// Whether an interrupt newer than `seen` (the newest entry the caller has read) arrived.
    pub fn newer_than(&self, seen: Option<Cursor>) -> bool {
        match (*self.rx.borrow(), seen) {
            (Some(interrupt), Some(seen)) => interrupt > seen,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Completes when an interrupt newer than `seen` arrives.
    pub async fn wait_newer_than(&mut self, seen: Option<Cursor>) {
        loop {
            if self.newer_than(seen) {
                return;
            }
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for InterruptWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
