//! Reconcile errors. Only transient failures are errors: an invalid spec or a missing reference is reported in
//! the status and waits for a change, it is not retried in a loop.

/// A transient reconcile failure, retried with per-object backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The session log (Redis) could not be reached.
    #[error("session log: {0}")]
    SessionLog(#[from] corral_session::Error),
    /// A finalizer step failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// An object could not be serialized.
    #[error("serializing an object: {0}")]
    Serialization(#[from] serde_json::Error),
    /// A sandbox daemon token could not be stored, read or deleted (Redis), or no Redis is configured.
    #[error("sandbox token store: {0}")]
    SandboxTokens(String),
    /// The operating system could not provide random bytes for a token.
    #[error("no randomness for a sandbox token: {0}")]
    Randomness(String),
    /// The object lacks a namespace or name, which every Corral resource has.
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),
}

impl Error {
    /// Whether the object's namespace is being deleted, so nothing new can be created in it: the object is
    /// about to go too, and there is nothing to retry.
    pub fn namespace_terminating(&self) -> bool {
        let Self::Kube(kube::Error::Api(status)) = self else {
            return false;
        };
        status.code == 403
            && status
                .details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
    }

    /// A short label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::SessionLog(_) => "session_log",
            Self::Finalizer(_) => "finalizer",
            Self::Serialization(_) => "serialization",
            Self::MissingObjectKey(_) => "missing_object_key",
            Self::Randomness(_) => "randomness",
            Self::SandboxTokens(_) => "sandbox_tokens",
        }
    }
}

/// Reconcile result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Error;

    fn api_error(json: serde_json::Value) -> Error {
        Error::Kube(kube::Error::Api(Box::new(serde_json::from_value(json).unwrap())))
    }

    #[test]
    fn a_terminating_namespace_is_recognised_and_other_refusals_are_not() {
        let terminating = api_error(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "unable to create new content in namespace t because it is being terminated",
            "details": {"name": "x", "kind": "secrets", "causes": [
                {"reason": "NamespaceTerminating", "message": "namespace t is being terminated", "field": "metadata.namespace"}]}
        }));
        assert!(terminating.namespace_terminating());
        let forbidden = api_error(
            serde_json::json!({"status": "Failure", "code": 403, "reason": "Forbidden", "message": "RBAC"}),
        );
        assert!(!forbidden.namespace_terminating());
    }
}
