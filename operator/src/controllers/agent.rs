//! The Agent controller: validates the spec, checks the Secrets and ConfigMaps it references, stores every
//! version as a ControllerRevision, and reports `version` and `Ready`.

use std::{sync::Arc, time::Duration};

use corral_api::{
    Agent, AgentStatus,
    common::{ConfigMapKeyRef, SecretKeyRef},
    conditions::{self, reasons, set_condition, types},
    labels,
    validation::validate_agent,
};
use k8s_openapi::{
    api::{
        apps::v1::ControllerRevision,
        core::v1::{ConfigMap, Secret},
    },
    jiff::Timestamp,
};
use kube::{
    Api, ResourceExt,
    runtime::{Controller, controller::Action, events::EventType, watcher},
};

use super::{error_policy, harness, log_results, watched_api};
use crate::{
    context::{Context, backoff_key},
    error::{Error, Result},
    revisions,
    status::{apply_status, namespaced_api},
};

const CONTROLLER: &str = "agent";

/// Runs the Agent controller until `stop` completes.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let ns = ctx.watch_namespace.clone();
    let agents = watched_api::<Agent>(&ctx.client, ns.as_deref());
    let revisions = watched_api::<ControllerRevision>(&ctx.client, ns.as_deref());
    let revision_selector = format!("{}=agent-revision", labels::COMPONENT);
    let stream = Controller::new(agents, watcher::Config::default().any_semantic())
        .owns(revisions, watcher::Config::default().labels(&revision_selector))
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.concurrency))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy::<Agent>(CONTROLLER), ctx);
    log_results(CONTROLLER, stream).await;
}

/// A problem that keeps an Agent from being Ready: the condition reason and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Condition reason.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

async fn reconcile(agent: Arc<Agent>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = agent.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<Agent> = namespaced_api(&ctx.client, agent.as_ref())?;

    let (problem, version) = match validate_agent(&agent.spec) {
        Err(e) => (
            Some(Problem {
                reason: e.reason,
                message: e.to_string(),
            }),
            current_version(&agent),
        ),
        Ok(()) => {
            let version = revisions::ensure_version(&ctx.client, &agent).await?;
            harness::ensure(&ctx, &ns).await?;
            (check_references(&ctx, &ns, &agent).await?, Some(version))
        }
    };

    let status = compute_status(
        agent.status.as_ref(),
        agent.metadata.generation,
        version,
        problem.as_ref(),
        Timestamp::now(),
    );
    let became_unready = became_unready(
        agent.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]),
        &status.conditions,
    );
    apply_status(&api, agent.as_ref(), &status).await?;
    if let (Some(p), true) = (&problem, became_unready) {
        ctx.publish(
            agent.as_ref(),
            EventType::Warning,
            p.reason,
            p.message.clone(),
            "Validate",
        )
        .await;
    }
    ctx.backoff.succeeded(&backoff_key(agent.as_ref()));
    Ok(match problem {
        None => Action::requeue(Duration::from_secs(600)),
        Some(p) if p.reason == reasons::INVALID_SPEC => Action::await_change(),
        // The fix is in another object (a Secret or ConfigMap), which this controller does not watch.
        Some(_) => Action::requeue(Duration::from_secs(15)),
    })
}

fn current_version(agent: &Agent) -> Option<i64> {
    agent.status.as_ref().and_then(|s| s.version)
}

/// The Agent's status from the outcome of this reconcile.
pub fn compute_status(
    previous: Option<&AgentStatus>,
    generation: Option<i64>,
    version: Option<i64>,
    problem: Option<&Problem>,
    now: Timestamp,
) -> AgentStatus {
    let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
    let problem = problem.map(|p| (p.reason, p.message.as_str()));
    set_condition(
        &mut conditions,
        conditions::ready(problem, "the agent is ready", generation, now),
    );
    // `spent` is the harness's field: left out of the operator's apply, so it stays.
    AgentStatus {
        version,
        observed_generation: generation,
        conditions,
        spent: None,
    }
}

/// True when the new conditions report a Ready problem that the old ones did not (a new reason counts).
pub fn became_unready(old: &[conditions::Condition], new: &[conditions::Condition]) -> bool {
    let old = conditions::find(old, types::READY);
    match conditions::find(new, types::READY) {
        Some(n) if n.status != "True" => old.is_none_or(|o| o.status == "True" || o.reason != n.reason),
        _ => false,
    }
}

async fn check_references(ctx: &Context, ns: &str, agent: &Agent) -> Result<Option<Problem>> {
    let provider = &agent.spec.model.provider;
    if let Some(secret) = &provider.api_key_secret_ref
        && let Some(p) = check_model_key(ctx, ns, secret, "spec.model.provider.apiKeySecretRef").await?
    {
        return Ok(Some(p));
    }
    if let Some(cm) = &provider.script_ref
        && let Some(p) = check_config_map(ctx, ns, cm, "spec.model.provider.scriptRef").await?
    {
        return Ok(Some(p));
    }
    Ok(None)
}

/// The model key's Secret: it must exist, hold the key and be one a model reference may name (the harness refuses
/// the others; the condition says so before a session tries).
async fn check_model_key(ctx: &Context, ns: &str, r: &SecretKeyRef, field: &str) -> Result<Option<Problem>> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let found = api.get_opt(&r.name).await?;
    if let Some(refusal) = found.as_ref().and_then(corral_api::model_key::refusal) {
        return Ok(Some(Problem {
            reason: reasons::SECRET_NOT_ALLOWED,
            message: format!("{field}: {refusal}"),
        }));
    }
    Ok(secret_problem(found, ns, r, field))
}

fn secret_problem(found: Option<Secret>, ns: &str, r: &SecretKeyRef, field: &str) -> Option<Problem> {
    match found {
        None => Some(Problem {
            reason: reasons::SECRET_NOT_FOUND,
            message: format!("{field}: Secret {:?} does not exist in namespace {ns:?}", r.name),
        }),
        Some(s) if !s.data.as_ref().is_some_and(|d| d.contains_key(&r.key)) => Some(Problem {
            reason: reasons::SECRET_KEY_MISSING,
            message: format!("{field}: Secret {:?} has no key {:?}", r.name, r.key),
        }),
        Some(_) => None,
    }
}

async fn check_config_map(
    ctx: &Context,
    ns: &str,
    r: &ConfigMapKeyRef,
    field: &str,
) -> Result<Option<Problem>> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let found = api.get_opt(&r.name).await?;
    let has_key = found
        .as_ref()
        .is_some_and(|c| c.data.as_ref().is_some_and(|d| d.contains_key(&r.key)));
    Ok((!has_key).then(|| Problem {
        reason: reasons::CONFIG_MAP_NOT_FOUND,
        message: match found {
            None => format!(
                "{field}: ConfigMap {:?} does not exist in namespace {ns:?}",
                r.name
            ),
            Some(_) => format!("{field}: ConfigMap {:?} has no key {:?}", r.name, r.key),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn ready_status_carries_version_and_generation() {
        let s = compute_status(None, Some(3), Some(2), None, t(10));
        assert_eq!(s.version, Some(2));
        assert_eq!(s.observed_generation, Some(3));
        assert!(conditions::is_true(&s.conditions, types::READY));
    }

    #[test]
    fn problem_sets_reason_and_keeps_version() {
        let p = Problem {
            reason: reasons::SECRET_NOT_FOUND,
            message: "Secret \"k\" does not exist".into(),
        };
        let s = compute_status(None, Some(1), Some(1), Some(&p), t(10));
        let ready = conditions::find(&s.conditions, types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reasons::SECRET_NOT_FOUND)
        );
        assert_eq!(s.version, Some(1));
    }

    #[test]
    fn events_fire_on_transitions_only() {
        let ok = compute_status(None, Some(1), Some(1), None, t(1));
        let p = Problem {
            reason: reasons::INVALID_SPEC,
            message: "bad".into(),
        };
        let bad = compute_status(Some(&ok), Some(2), Some(1), Some(&p), t(2));
        assert!(became_unready(&ok.conditions, &bad.conditions));
        let still_bad = compute_status(Some(&bad), Some(2), Some(1), Some(&p), t(3));
        assert!(!became_unready(&bad.conditions, &still_bad.conditions));
        let q = Problem {
            reason: reasons::SECRET_NOT_FOUND,
            message: "gone".into(),
        };
        let other = compute_status(Some(&bad), Some(3), Some(1), Some(&q), t(4));
        assert!(became_unready(&bad.conditions, &other.conditions));
        assert!(!became_unready(&bad.conditions, &ok.conditions));
    }
}
