//! Sessions whose tool calls wait for a sandbox that cannot be scheduled, and why: read by the run to tell the
//! client on the event stream while the call waits, instead of leaving it to see nothing for minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Key = (String, String);

/// The waits in progress, by (namespace, session).
#[derive(Debug, Default, Clone)]
pub struct SandboxWaits(Arc<Mutex<HashMap<Key, String>>>);

impl SandboxWaits {
    /// Why the session's sandbox is not ready, while a call waits for it.
    pub fn reason(&self, namespace: &str, session: &str) -> Option<String> {
        let waits = self.0.lock().unwrap_or_else(|e| e.into_inner());
        waits.get(&(namespace.to_owned(), session.to_owned())).cloned()
    }

    /// A guard under which the session's wait is recorded; the record goes with the guard, whichever way the
    /// wait ends (ready, failed, timed out, abandoned).
    pub fn waiting(&self, namespace: &str, session: &str) -> WaitGuard {
        WaitGuard {
            waits: self.clone(),
            key: (namespace.to_owned(), session.to_owned()),
        }
    }
}

/// Records one wait while it lasts.
#[derive(Debug)]
pub struct WaitGuard {
    waits: SandboxWaits,
    key: Key,
}

impl WaitGuard {
    /// Sets (`Some`) or clears (`None`) the reason the sandbox is not ready.
    pub fn set(&self, reason: Option<&str>) {
        let mut waits = self.waits.0.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(reason) => waits.insert(self.key.clone(), reason.to_owned()),
            None => waits.remove(&self.key),
        };
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_lasts_as_long_as_its_wait() {
        let waits = SandboxWaits::default();
        {
            let wait = waits.waiting("team", "s1");
            assert_eq!(waits.reason("team", "s1"), None);
            wait.set(Some("0/1 nodes are available: 1 Insufficient cpu."));
            assert_eq!(
                waits.reason("team", "s1").as_deref(),
                Some("0/1 nodes are available: 1 Insufficient cpu.")
            );
            assert_eq!(waits.reason("team", "s2"), None);
            assert_eq!(waits.reason("other", "s1"), None);
        }
        assert_eq!(waits.reason("team", "s1"), None, "gone with its guard");
    }
}
