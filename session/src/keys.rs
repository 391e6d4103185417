//! Redis key names of one session. Every key of a session carries the same hash tag.

/// The Redis keys that make up one session's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    tag: String,
}

impl SessionKeys {
    /// The keys of session `session` in namespace `namespace`.
    pub fn new(namespace: &str, session: &str) -> Self {
        Self {
            tag: format!("corral:{{{namespace}/{session}}}"),
        }
    }

    /// The stream holding the session's events in order.
    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }

    /// The session's writer lease (holder and expiry).
    pub fn lease(&self) -> String {
        format!("{}:lease", self.tag)
    }

    /// The session's fencing token counter, incremented on every lease takeover.
    pub fn fence(&self) -> String {
        format!("{}:fence", self.tag)
    }

    /// Every key of the session, for deletion.
    pub fn all(&self) -> Vec<String> {
        vec![self.events(), self.lease(), self.fence()]
    }
}

/// The wake-up queue of a namespace's harness pool: a stream of session names read through a consumer group.
pub fn wakeups(namespace: &str) -> String {
    format!("corral:wakeups:{{{namespace}}}")
}

/// The consumer group of the harness pool on a wake-up queue.
pub const WAKEUP_GROUP: &str = "harness";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = SessionKeys::new("team-a", "sesn-1");
        for key in keys.all() {
            assert!(key.starts_with("corral:{team-a/sesn-1}:"), "{key}");
        }
        assert_ne!(keys.events(), keys.lease());
    }
}
