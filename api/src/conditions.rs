//! Status conditions: the type, the reasons Corral uses, and a setter that keeps `lastTransitionTime` honest.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

/// A standard Kubernetes condition (`metav1.Condition`).
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Condition types.
pub mod types {
    /// The object is usable: all its references resolve and its spec is valid.
    pub const READY: &str = "Ready";
    /// A Session's sandbox pod is scheduled and running (or not needed right now).
    pub const SANDBOX_READY: &str = "SandboxReady";
    /// Every Secret a Session's repository resources name (`authorizationSecretRef`) exists, holds the key and may
    /// be used as a repository token; set only on Sessions with such a reference.
    pub const REPOSITORY_TOKENS: &str = "RepositoryTokens";
}

/// Condition reasons (CamelCase, as Kubernetes expects). Each names one cause a user can act on.
pub mod reasons {
    /// Everything the object references exists and its spec is valid.
    pub const READY: &str = "Ready";
    /// The spec is syntactically accepted but semantically invalid; the message says which field.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A referenced Secret does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A referenced Secret exists but lacks the referenced key.
    pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
    /// A referenced Secret may not be read for this use (a model key without the `corral.dev/credential=model`
    /// label, a vault credential, a Secret Corral keeps for itself); see [`crate::model_key`].
    pub const SECRET_NOT_ALLOWED: &str = "SecretNotAllowed";
    /// A referenced ConfigMap (or its key) does not exist.
    pub const CONFIG_MAP_NOT_FOUND: &str = "ConfigMapNotFound";
    /// The Session's Agent does not exist.
    pub const AGENT_NOT_FOUND: &str = "AgentNotFound";
    /// The Session pins an Agent version that does not exist.
    pub const AGENT_VERSION_NOT_FOUND: &str = "AgentVersionNotFound";
    /// The Session's Agent exists but is not Ready.
    pub const AGENT_NOT_READY: &str = "AgentNotReady";
    /// The Session's Environment does not exist.
    pub const ENVIRONMENT_NOT_FOUND: &str = "EnvironmentNotFound";
    /// The Session's Environment exists but is not Ready.
    pub const ENVIRONMENT_NOT_READY: &str = "EnvironmentNotReady";
    /// The Session's Environment is archived and cannot take new sessions.
    pub const ENVIRONMENT_ARCHIVED: &str = "EnvironmentArchived";
    /// The Session has terminated.
    pub const TERMINATED: &str = "Terminated";
    /// No sandbox is needed: none has been asked for, or it was reaped while idle.
    pub const SANDBOX_NOT_REQUESTED: &str = "NotRequested";
    /// A transient error occurred talking to the Kubernetes API; the operator retries with backoff.
    pub const RECONCILE_ERROR: &str = "ReconcileError";
}

/// Builds a condition observed at `generation`.
pub fn new_condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// The `Ready` condition: True with `ok_message` when there is no problem, else False with the problem's reason
/// and message.
pub fn ready(
    problem: Option<(&str, &str)>,
    ok_message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    match problem {
        None => new_condition(types::READY, true, reasons::READY, ok_message, generation, now),
        Some((reason, message)) => new_condition(types::READY, false, reason, message, generation, now),
    }
}

/// Inserts or replaces the condition of the same type, keeping the previous `lastTransitionTime` when the status
/// did not change (so that the time says when the status last flipped, not when it was last written).
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let mut conds = vec![new_condition(
            types::READY,
            true,
            reasons::READY,
            "ok",
            Some(1),
            at(100),
        )];
        set_condition(
            &mut conds,
            new_condition(types::READY, true, reasons::READY, "still ok", Some(2), at(200)),
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, Time(at(100)));
        assert_eq!(conds[0].message, "still ok");
        assert_eq!(conds[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let mut conds = vec![new_condition(
            types::READY,
            true,
            reasons::READY,
            "ok",
            Some(1),
            at(100),
        )];
        set_condition(
            &mut conds,
            new_condition(
                types::READY,
                false,
                reasons::AGENT_NOT_FOUND,
                "gone",
                Some(1),
                at(200),
            ),
        );
        assert_eq!(conds[0].last_transition_time, Time(at(200)));
        assert!(!is_true(&conds, types::READY));
    }

    #[test]
    fn other_types_are_kept() {
        let mut conds = vec![new_condition(
            types::READY,
            true,
            reasons::READY,
            "ok",
            None,
            at(1),
        )];
        set_condition(
            &mut conds,
            new_condition(
                types::SANDBOX_READY,
                false,
                reasons::SANDBOX_NOT_REQUESTED,
                "",
                None,
                at(2),
            ),
        );
        assert_eq!(conds.len(), 2);
        assert!(is_true(&conds, types::READY));
    }
}
