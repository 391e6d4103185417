//! Writing the harness's Session status fields with server-side apply.
//!
//! Server-side apply makes a field manager own exactly the fields of its last apply: a field left out is dropped.
//! So every apply carries all the harness's fields, the ones not being changed read from the object first, and the
//! `resourceVersion` it read them at: a write that raced another fails with a conflict and is made again from a
//! fresh read. Writes land in log order, whichever replica makes them and whenever they finish (a run does not wait
//! for its last one): a write whose `lastEventTime` is older than the one the Session already shows is dropped, a
//! later state of the log having been written already.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use corral_api::agent::AgentSpent;
use corral_api::budget::{Money, Spent};
use corral_api::labels::HARNESS_FIELD_MANAGER;
use corral_api::session::SessionStatus;
use corral_api::{Agent, Session};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::{StatusFields, StatusFuture, StatusSink};

/// How many times a status write is tried when the Session changed between its read and its write.
const APPLY_ATTEMPTS: u32 = 5;

/// Whether `current` shows a later state of the log than `fields` (a newer `lastEventTime`): writing `fields` would
/// go back in time.
pub fn superseded(fields: &StatusFields, current: Option<&SessionStatus>) -> bool {
    let time = |t: Option<&String>| t.and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match (
        time(fields.last_event_time.as_ref()),
        time(current.and_then(|c| c.last_event_time.as_ref())),
    ) {
        (Some(ours), Some(shown)) => shown > ours,
        _ => false,
    }
}

/// A lock per (namespace, session) with a status write under way.
type WriteLocks = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// Writes Session status fields through the Kubernetes API.
#[derive(Clone)]
pub struct StatusWriter {
    client: Client,
    /// One lock per session with a write under way. An apply reads the harness's fields and writes them all back,
    /// so two at once for one session (the status reported in the background and a sandbox request) could drop
    /// each other's change: they take turns.
    writing: Arc<std::sync::Mutex<WriteLocks>>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter").finish_non_exhaustive()
    }
}

/// The apply body: every field the harness owns.
pub fn apply_body(
    fields: Option<&StatusFields>,
    current: Option<&SessionStatus>,
    requested_at: Option<&str>,
) -> Value {
    let mut status = serde_json::Map::new();
    let phase = fields.map(|f| f.phase).or(current.and_then(|c| c.phase));
    if let Some(phase) = phase {
        status.insert("phase".into(), json!(phase));
    }
    let usage = fields
        .map(|f| f.usage.clone())
        .or(current.and_then(|c| c.usage.clone()));
    if let Some(usage) = usage {
        status.insert("usage".into(), json!(usage));
    }
    let cost = match fields {
        Some(f) => f.list_cost.clone(),
        None => current.and_then(|c| c.list_cost.clone()),
    };
    if let Some(cost) = cost {
        status.insert("listCost".into(), json!(cost));
    }
    let active = fields
        .map(|f| f.active_seconds)
        .or(current.and_then(|c| c.active_seconds));
    if let Some(active) = active {
        status.insert("activeSeconds".into(), json!(active));
    }
    let last = fields
        .and_then(|f| f.last_event_time.clone())
        .or(current.and_then(|c| c.last_event_time.clone()));
    if let Some(last) = last {
        status.insert("lastEventTime".into(), json!(last));
    }
    let requested = requested_at
        .map(str::to_owned)
        .or(current.and_then(|c| c.sandbox.as_ref()?.requested_at.clone()));
    if let Some(requested) = requested {
        status.insert("sandbox".into(), json!({"requestedAt": requested}));
    }
    json!({"apiVersion": "corral.dev/v1alpha1", "kind": "Session", "status": status})
}

impl StatusWriter {
    /// A writer using `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            writing: Arc::default(),
        }
    }

    async fn apply(
        &self,
        namespace: &str,
        session: &str,
        fields: Option<&StatusFields>,
        requested_at: Option<&str>,
    ) -> Result<(), kube::Error> {
        let key = (namespace.to_owned(), session.to_owned());
        let lock = self
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _turn = lock.lock().await;
            self.apply_now(namespace, session, fields, requested_at).await
        };
        drop(lock);
        let mut writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if writing.get(&key).is_some_and(|l| Arc::strong_count(l) == 1) {
            writing.remove(&key);
        }
        result
    }

    async fn apply_now(
        &self,
        namespace: &str,
        session: &str,
        fields: Option<&StatusFields>,
        requested_at: Option<&str>,
    ) -> Result<(), kube::Error> {
        let api: Api<Session> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::apply(HARNESS_FIELD_MANAGER).force();
        let mut attempt = 1;
        loop {
            let current = api.get_status(session).await?;
            if fields.is_some_and(|f| superseded(f, current.status.as_ref())) {
                return Ok(());
            }
            let mut body = apply_body(fields, current.status.as_ref(), requested_at);
            body["metadata"] = json!({ "resourceVersion": current.metadata.resource_version });
            match api.patch_status(session, &params, &Patch::Apply(&body)).await {
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < APPLY_ATTEMPTS => {
                    attempt += 1
                }
                other => return other.map(drop),
            }
        }
    }

    /// Asks the operator for a (new) sandbox: `status.sandbox.requestedAt` = now.
    pub async fn request_sandbox(&self, namespace: &str, session: &str) -> Result<(), kube::Error> {
        let now = corral_api::events::format_rfc3339_millis(&jiff::Timestamp::now());
        self.apply(namespace, session, None, Some(&now)).await
    }
}

impl StatusSink for StatusWriter {
    fn report<'a>(&'a self, namespace: &'a str, session: &'a str, fields: StatusFields) -> StatusFuture<'a> {
        Box::pin(async move {
            if let Err(err) = self.apply(namespace, session, Some(&fields), None).await {
                tracing::warn!(namespace, session, error = %err, "cannot write the session status");
            }
        })
    }

    fn report_agent_spent<'a>(
        &'a self,
        namespace: &'a str,
        agent: &'a str,
        spent: Spent,
    ) -> StatusFuture<'a> {
        Box::pin(async move {
            let spent = AgentSpent {
                tokens: i64::try_from(spent.tokens).unwrap_or(i64::MAX),
                list_cost: spent.cents.map(Money::from_cents),
            };
            let body =
                json!({"apiVersion": "corral.dev/v1alpha1", "kind": "Agent", "status": {"spent": spent}});
            let api: Api<Agent> = Api::namespaced(self.client.clone(), namespace);
            let params = PatchParams::apply(HARNESS_FIELD_MANAGER).force();
            if let Err(err) = api.patch_status(agent, &params, &Patch::Apply(&body)).await {
                tracing::warn!(namespace, agent, error = %err, "cannot write the agent's spend");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use corral_api::budget::Money;
    use corral_api::session::{SessionPhase, Usage};

    use super::*;

    #[test]
    fn a_status_of_an_earlier_log_state_is_not_written_over_a_later_one() {
        let at = |t: &str| StatusFields {
            phase: SessionPhase::Idle,
            usage: Usage::default(),
            list_cost: None,
            active_seconds: 0.0,
            last_event_time: Some(t.to_owned()),
        };
        let shown = |t: &str| SessionStatus {
            last_event_time: Some(t.to_owned()),
            ..SessionStatus::default()
        };
        let later = shown("2026-05-01T10:00:02.010Z");
        assert!(superseded(&at("2026-05-01T10:00:01.999Z"), Some(&later)));
        assert!(
            !superseded(&at("2026-05-01T10:00:02.010Z"), Some(&later)),
            "the same time is written"
        );
        assert!(!superseded(&at("2026-05-01T10:00:02.011Z"), Some(&later)));
        // Compared as times, not as text.
        assert!(superseded(
            &at("2026-05-01T10:00:01.5Z"),
            Some(&shown("2026-05-01T10:00:01.600Z"))
        ));
        assert!(!superseded(&at("2026-05-01T10:00:01.5Z"), None));
        assert!(!superseded(
            &at("2026-05-01T10:00:01.5Z"),
            Some(&SessionStatus::default())
        ));
    }

    #[test]
    fn every_apply_carries_the_cost_and_keeps_the_last_one_when_only_the_sandbox_is_asked_for() {
        let fields = StatusFields {
            phase: SessionPhase::Idle,
            usage: Usage {
                input_tokens: 10,
                ..Usage::default()
            },
            list_cost: Some(Money::from_cents(2.04)),
            active_seconds: 1.234,
            last_event_time: None,
        };
        let body = apply_body(Some(&fields), None, None);
        assert_eq!(
            body["status"]["listCost"],
            json!({"amount": "2.04", "currency": "USD"})
        );
        assert_eq!(body["status"]["activeSeconds"], 1.234);
        // A sandbox request re-applies the cost already written, so the apply does not drop it.
        let current = SessionStatus {
            list_cost: Some(Money::from_cents(2.04)),
            ..SessionStatus::default()
        };
        let body = apply_body(None, Some(&current), Some("2026-01-01T00:00:00Z"));
        assert_eq!(body["status"]["listCost"]["amount"], "2.04");
        // An unpriced session writes no cost at all.
        let unpriced = StatusFields {
            list_cost: None,
            ..fields
        };
        assert!(
            apply_body(Some(&unpriced), None, None)["status"]
                .get("listCost")
                .is_none()
        );
    }
}
