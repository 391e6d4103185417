//! The Session controller: resolves the Agent (pinning its version) and the Environment, reports `Ready` with the
//! reason when a reference does not resolve, sets the initial phase, and removes a deleted Session's event log
//! from Redis (and its sandbox's credential grant) through a finalizer. Once both references resolve, the session's
//! sandbox is reconciled by [`crate::sandbox::reconcile()`], whose decision this controller writes as
//! `status.sandbox` and `SandboxReady`. With credential grants, changes to vault credential Secrets re-trigger the
//! sessions whose vaults hold them.

use std::{sync::Arc, time::Duration};

use corral_api::{
    Agent, Environment, Session, SessionStatus,
    conditions::{self, new_condition, reasons, set_condition, types},
    labels, model_key, repository,
    session::{SandboxPhase, SandboxStatus, SessionPhase},
    vault,
};
use k8s_openapi::{
    api::core::v1::{Pod, Secret},
    jiff::Timestamp,
};
use kube::{
    Api, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        events::EventType,
        finalizer::{Event as Finalizer, finalizer},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;

use super::{agent::became_unready, error_policy, log_results, watched_api};
use crate::{
    context::{Context, backoff_key},
    error::{Error, Result},
    revisions,
    sandbox::{self, Decision, naming::pods_selector, naming::sandbox_name},
    status::{apply_status, apply_status_as, namespaced_api},
};

const CONTROLLER: &str = "session";
/// Field manager of the one-time write of the initial phase; the harness takes `phase` over from it.
const PHASE_INIT_MANAGER: &str = "corral-operator-phase-init";

/// Runs the Session controller until `stop` completes.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let ns = ctx.watch_namespace.clone();
    let sessions = watched_api::<Session>(&ctx.client, ns.as_deref());
    let controller = Controller::new(sessions, watcher::Config::default().any_semantic());
    let store = controller.store();
    let by_agent = store.clone();
    let by_vault = store.clone();
    // With credential grants, a change to a vault's credentials re-applies the grants of the sessions using it.
    let controller = if ctx.sandbox.grants_namespace.is_some() {
        controller.watches(
            watched_api::<Secret>(&ctx.client, ns.as_deref()),
            watcher::Config::default().labels(&credential_selector()),
            move |s: Secret| {
                let Some(vault) = s.labels().get(vault::VAULT).cloned() else {
                    return vec![];
                };
                referencing(&by_vault, &s.namespace().unwrap_or_default(), |session| {
                    session.spec.vault_refs.iter().any(|r| r.name == vault)
                })
            },
        )
    } else {
        controller
    };
    // A repository token Secret written or rotated (by the gateway's resources.update, or by a GitOps user)
    // re-triggers the sessions naming it: their RepositoryTokens condition and their sandbox's grant follow it.
    let by_token = store.clone();
    let by_user_token = store.clone();
    let stream = controller
        .watches(
            watched_api::<Secret>(&ctx.client, ns.as_deref()),
            // By type, not by label: every Secret `token_refusal` accepts as a session's own token has the type.
            watcher::Config::default().fields(&format!("type={}", repository::TOKEN_SECRET_TYPE)),
            move |s: Secret| naming_token(&by_token, &s),
        )
        .watches(
            watched_api::<Secret>(&ctx.client, ns.as_deref()),
            watcher::Config::default().labels(&format!(
                "{}={}",
                model_key::CREDENTIAL_LABEL,
                repository::CREDENTIAL_REPOSITORY
            )),
            move |s: Secret| naming_token(&by_user_token, &s),
        )
        .watches(
            watched_api::<Agent>(&ctx.client, ns.as_deref()),
            watcher::Config::default(),
            move |a: Agent| {
                referencing(&by_agent, &a.namespace().unwrap_or_default(), |s| {
                    s.spec.agent.name == a.name_any()
                })
            },
        )
        .watches(
            watched_api::<Environment>(&ctx.client, ns.as_deref()),
            watcher::Config::default(),
            move |e: Environment| {
                referencing(&store, &e.namespace().unwrap_or_default(), |s| {
                    s.spec.environment_ref.name == e.name_any()
                })
            },
        )
        .owns(
            watched_api::<Pod>(&ctx.client, ns.as_deref()),
            watcher::Config::default().labels(&pods_selector()),
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.concurrency))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy::<Session>(CONTROLLER), ctx);
    log_results(CONTROLLER, stream).await;
}

/// The label selector of vault credential Secrets.
fn credential_selector() -> String {
    format!("{}={}", vault::OBJECT, vault::OBJECT_CREDENTIAL)
}

/// The sessions of the Secret's namespace with a repository resource whose `authorizationSecretRef` names it.
fn naming_token(store: &Store<Session>, secret: &Secret) -> Vec<ObjectRef<Session>> {
    let name = secret.name_any();
    referencing(store, &secret.namespace().unwrap_or_default(), |session| {
        sandbox::repository_grant::token_secret_names(session).contains(&name)
    })
}

fn referencing(store: &Store<Session>, ns: &str, pred: impl Fn(&Session) -> bool) -> Vec<ObjectRef<Session>> {
    store
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns) && pred(s))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

async fn reconcile(session: Arc<Session>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let api: Api<Session> = namespaced_api(&ctx.client, session.as_ref())?;
    let action = finalizer(&api, labels::SESSION_LOG_FINALIZER, session, |event| async {
        match event {
            Finalizer::Apply(s) => apply(s, ctx.clone()).await,
            Finalizer::Cleanup(s) => cleanup(s, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    Ok(action)
}

/// What resolving a Session's references found.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Both resolve; the session runs this agent version.
    Ready {
        /// The pinned agent version.
        agent_version: i64,
    },
    /// A reference does not resolve.
    Problem {
        /// Condition reason.
        reason: &'static str,
        /// What is wrong.
        message: String,
        /// The pinned agent version, when known.
        agent_version: Option<i64>,
    },
}

async fn apply(cached: Arc<Session>, ctx: Arc<Context>) -> Result<Action> {
    let ns = cached.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<Session> = Api::namespaced(ctx.client.clone(), &ns);
    // NB: the sandbox decision compares the pod with the status this controller wrote last; a reconcile triggered
    // by the pod's own deletion can run before the watch cache has that status, so read the Session fresh.
    let Some(session) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };

    if session.status.as_ref().and_then(|s| s.phase).is_none() {
        let initial = json!({ "phase": SessionPhase::Idle });
        apply_status_as(&api, &session, &initial, PHASE_INIT_MANAGER).await?;
    }

    let (resolution, env) = resolve(&ctx, &ns, &session).await?;
    let sandbox = match (&resolution, &env) {
        (Resolution::Ready { .. }, Some(env)) => Some(sandbox::reconcile(&ctx, &ns, &session, env).await?),
        _ => None,
    };
    let mut status = compute_status(
        session.status.as_ref(),
        session.metadata.generation,
        &resolution,
        sandbox.as_ref(),
        Timestamp::now(),
    );
    if let Some((ok, reason, message)) = sandbox
        .as_ref()
        .and_then(|d| sandbox::isolation::for_decision(&ctx.isolation, &ns, d))
    {
        let condition = new_condition(
            sandbox::isolation::CONDITION,
            ok,
            reason,
            message,
            session.metadata.generation,
            Timestamp::now(),
        );
        set_condition(&mut status.conditions, condition);
    }
    let old = session.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
    let tokens = sandbox::grants::token_secrets(&ctx, &ns, &session).await?;
    let refused_token = repository_token_condition(&session, &tokens, old, &mut status, Timestamp::now());
    let notify = became_unready(old, &status.conditions);
    apply_status(&api, &session, &status).await?;
    if let Some((kind, seconds)) = provisioned(
        session.status.as_ref(),
        &status,
        &session.name_any(),
        Timestamp::now(),
    ) {
        ctx.metrics.provisioned(kind, seconds);
    }
    if let (Resolution::Problem { reason, message, .. }, true) = (&resolution, notify) {
        ctx.publish(&session, EventType::Warning, reason, message.clone(), "Resolve")
            .await;
    }
    if let Some((reason, message)) = refused_token {
        ctx.publish(&session, EventType::Warning, reason, message, "Resolve")
            .await;
    }
    ctx.backoff.succeeded(&backoff_key(&session));
    let periodic = Duration::from_secs(600);
    Ok(match resolution {
        Resolution::Ready { .. } => Action::requeue(
            sandbox
                .and_then(|d| d.requeue)
                .map_or(periodic, |r| r.min(periodic)),
        ),
        // Changes to Agents and Environments re-trigger the sessions that reference them.
        Resolution::Problem { .. } => Action::await_change(),
    })
}

/// Sets the `RepositoryTokens` condition in `status` (built afresh, without it) from the Secrets the repository
/// resources name, keeping the old condition's transition time while its status holds, so that an unchanged
/// verdict writes no new status; answers the Warning Event to publish when it turns false or its message changes
/// (not again at every pass).
fn repository_token_condition(
    session: &Session,
    tokens: &std::collections::BTreeMap<String, Secret>,
    old: &[conditions::Condition],
    status: &mut SessionStatus,
    now: Timestamp,
) -> Option<(&'static str, String)> {
    let (ok, reason, message) = sandbox::repository_grant::token_condition(session, tokens)?;
    let before = conditions::find(old, types::REPOSITORY_TOKENS);
    let news = before.is_none_or(|c| c.status != "False" || c.message != message);
    let mut condition = new_condition(
        types::REPOSITORY_TOKENS,
        ok,
        reason,
        message.clone(),
        session.metadata.generation,
        now,
    );
    if let Some(before) = before.filter(|b| b.status == condition.status) {
        condition.last_transition_time = before.last_transition_time.clone();
    }
    set_condition(&mut status.conditions, condition);
    (!ok && news).then_some((reason, message))
}

async fn resolve(ctx: &Context, ns: &str, session: &Session) -> Result<(Resolution, Option<Environment>)> {
    let problem = |reason, message: String, agent_version| Resolution::Problem {
        reason,
        message,
        agent_version,
    };
    let agent_name = &session.spec.agent.name;
    let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), ns);
    let Some(agent) = agents.get_opt(agent_name).await? else {
        return Ok((
            problem(
                reasons::AGENT_NOT_FOUND,
                format!("spec.agent.name: Agent {agent_name:?} does not exist in namespace {ns:?}"),
                None,
            ),
            None,
        ));
    };
    let pinned = session.effective_agent_version();
    let Some(version) = pinned.or_else(|| agent.status.as_ref().and_then(|s| s.version)) else {
        return Ok((
            problem(
                reasons::AGENT_NOT_READY,
                format!("Agent {agent_name:?} has no version yet"),
                None,
            ),
            None,
        ));
    };
    if pinned.is_some() && !revisions::version_exists(&ctx.client, ns, &agent, version).await? {
        return Ok((
            problem(
                reasons::AGENT_VERSION_NOT_FOUND,
                format!("spec.agent.version: Agent {agent_name:?} has no version {version}"),
                Some(version),
            ),
            None,
        ));
    }
    let agent_conditions = agent.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
    if !conditions::is_true(agent_conditions, types::READY) {
        let why = conditions::find(agent_conditions, types::READY)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return Ok((
            problem(
                reasons::AGENT_NOT_READY,
                format!("Agent {agent_name:?} is not ready: {why}"),
                Some(version),
            ),
            None,
        ));
    }

    let env_name = &session.spec.environment_ref.name;
    let envs: Api<Environment> = Api::namespaced(ctx.client.clone(), ns);
    let Some(env) = envs.get_opt(env_name).await? else {
        return Ok((
            problem(
                reasons::ENVIRONMENT_NOT_FOUND,
                format!(
                    "spec.environmentRef.name: Environment {env_name:?} does not exist in namespace {ns:?}"
                ),
                Some(version),
            ),
            None,
        ));
    };
    let env_conditions = env.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
    if !conditions::is_true(env_conditions, types::READY) {
        let why = conditions::find(env_conditions, types::READY)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return Ok((
            problem(
                reasons::ENVIRONMENT_NOT_READY,
                format!("Environment {env_name:?} is not ready: {why}"),
                Some(version),
            ),
            None,
        ));
    }
    Ok((
        Resolution::Ready {
            agent_version: version,
        },
        Some(env),
    ))
}

/// When this reconcile publishes a ready sandbox that was not ready before: `warm` when the pod came from a warm pool
/// (its name is not the session's own pod name), else `cold`, and the seconds since the harness asked for it.
pub fn provisioned(
    previous: Option<&SessionStatus>,
    next: &SessionStatus,
    session: &str,
    now: Timestamp,
) -> Option<(&'static str, f64)> {
    let ready = |s: Option<&SandboxStatus>| s.and_then(|s| s.phase) == Some(SandboxPhase::Ready);
    let before = previous.and_then(|p| p.sandbox.as_ref());
    if ready(before) || !ready(next.sandbox.as_ref()) {
        return None;
    }
    let requested: Timestamp = before?.requested_at.as_deref()?.parse().ok()?;
    let pod = next.sandbox.as_ref()?.pod.as_deref()?;
    let kind = if pod == sandbox_name(session) {
        "cold"
    } else {
        "warm"
    };
    let seconds = now.duration_since(requested).as_secs_f64();
    (seconds >= 0.0).then_some((kind, seconds))
}

/// The operator-owned part of a Session's status from the outcome of this reconcile. `phase`, `usage` and the
/// other harness-owned fields are left out so that this apply never touches them.
pub fn compute_status(
    previous: Option<&SessionStatus>,
    generation: Option<i64>,
    resolution: &Resolution,
    sandbox: Option<&Decision>,
    now: Timestamp,
) -> SessionStatus {
    let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
    let (ready, agent_version) = match resolution {
        Resolution::Ready { agent_version } => (
            new_condition(
                types::READY,
                true,
                reasons::READY,
                "agent and environment resolve",
                generation,
                now,
            ),
            Some(*agent_version),
        ),
        Resolution::Problem {
            reason,
            message,
            agent_version,
        } => (
            new_condition(types::READY, false, reason, message.clone(), generation, now),
            *agent_version,
        ),
    };
    set_condition(&mut conditions, ready);
    if let Some(d) = sandbox {
        let (ok, reason, message) = &d.condition;
        set_condition(
            &mut conditions,
            new_condition(
                types::SANDBOX_READY,
                *ok,
                reason,
                message.clone(),
                generation,
                now,
            ),
        );
    }
    // The operator owns every sandbox field but `requestedAt` (the harness's): carry them over when this reconcile
    // did not look at the sandbox, so that the apply does not drop them.
    let sandbox_status = match sandbox {
        Some(d) => d.status.clone(),
        None => previous.and_then(|s| s.sandbox.clone()).map(|s| SandboxStatus {
            requested_at: None,
            ..s
        }),
    };
    // Once pinned, the version never moves, even if the Agent changes later.
    let agent_version = previous.and_then(|s| s.agent_version).or(agent_version);
    // The probe's verdict stands while the sandbox it was about is ready.
    let isolation_applies = sandbox_status.as_ref().and_then(|s| s.phase) == Some(SandboxPhase::Ready);
    SessionStatus {
        sandbox: sandbox_status.filter(|s| s.phase.is_some()),
        agent_version,
        observed_generation: generation,
        conditions: conditions
            .into_iter()
            .filter(|c| {
                c.type_ == types::READY
                    || c.type_ == types::SANDBOX_READY
                    || (c.type_ == sandbox::isolation::CONDITION && isolation_applies)
            })
            .collect(),
        ..SessionStatus::default()
    }
}

async fn cleanup(session: Arc<Session>, ctx: Arc<Context>) -> Result<Action> {
    let ns = session.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    // The pod goes with the Session (it is owned); its grant lives in another namespace and goes now.
    let pod = session
        .status
        .as_ref()
        .and_then(|s| s.sandbox.as_ref())
        .and_then(|s| s.pod.as_deref());
    if let (Some(grants), Some(pod)) = (ctx.sandbox.grants_namespace.as_deref(), pod) {
        sandbox::grants::delete_grant(&ctx, grants, &ns, pod).await?;
    }
    // The daemon tokens of its pod (a claimed warm pod keeps its own name) go too.
    let own = sandbox::naming::sandbox_name(&session.name_any());
    for pod in pod.into_iter().chain([own.as_str()]) {
        sandbox::token::delete_token(&ctx, &ns, pod).await?;
    }
    match ctx.session_log.clone() {
        Some(mut conn) => {
            corral_session::delete_session_log(&mut conn, &ns, &session.name_any()).await?;
            tracing::info!(namespace = %ns, session = %session.name_any(), "deleted the session's event log");
        }
        None => {
            tracing::warn!(session = %session.name_any(), "no session log configured; its events stay in Redis")
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn an_unchanged_repository_token_verdict_keeps_its_transition_time_and_sends_no_second_event() {
        let spec: corral_api::SessionSpec = serde_json::from_value(serde_json::json!({
            "agent": {"name": "a"}, "environmentRef": {"name": "e"},
            "resources": [{"type": "github_repository", "url": "https://git.example/o/r.git",
                           "authorizationSecretRef": {"name": "gone", "key": "token"}}]
        }))
        .unwrap();
        let session = Session::new("sesn-1", spec);
        let none = std::collections::BTreeMap::new();
        let mut first = SessionStatus::default();
        let event = repository_token_condition(&session, &none, &[], &mut first, t(100));
        assert!(event.is_some(), "the first refusal is told");
        // The next pass starts from a status without the condition, as compute_status builds it.
        let mut second = SessionStatus::default();
        let event = repository_token_condition(&session, &none, &first.conditions, &mut second, t(200));
        assert_eq!(event, None, "the same refusal is not told again");
        assert_eq!(
            second.conditions, first.conditions,
            "an unchanged verdict writes the same status"
        );
    }

    #[test]
    fn provisioning_is_timed_from_the_request_to_the_first_ready_status() {
        let sandbox = |phase, pod: &str| SandboxStatus {
            phase: Some(phase),
            pod: Some(pod.into()),
            requested_at: Some("2026-01-01T00:00:10Z".into()),
            ..SandboxStatus::default()
        };
        let status = |s| SessionStatus {
            sandbox: Some(s),
            ..SessionStatus::default()
        };
        let now: Timestamp = "2026-01-01T00:00:12.5Z".parse().unwrap();
        let before = status(sandbox(SandboxPhase::Provisioning, "sbx-s1"));
        let own = sandbox_name("s1");
        let cold = status(sandbox(SandboxPhase::Ready, &own));
        assert_eq!(provisioned(Some(&before), &cold, "s1", now), Some(("cold", 2.5)));
        let warm = status(sandbox(SandboxPhase::Ready, "pool-e-abc"));
        assert_eq!(provisioned(Some(&before), &warm, "s1", now), Some(("warm", 2.5)));
        // Already ready before: nothing new to time.
        assert_eq!(provisioned(Some(&cold), &cold, "s1", now), None);
    }

    #[test]
    fn missing_agent_is_reported_with_its_reason() {
        let r = Resolution::Problem {
            reason: reasons::AGENT_NOT_FOUND,
            message: "no".into(),
            agent_version: None,
        };
        let s = compute_status(None, Some(1), &r, None, t(1));
        let ready = conditions::find(&s.conditions, types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reasons::AGENT_NOT_FOUND)
        );
        assert_eq!(s.agent_version, None);
        assert_eq!(s.phase, None, "the operator never writes the harness's phase");
    }

    #[test]
    fn pinned_version_never_moves() {
        let first = compute_status(None, Some(1), &Resolution::Ready { agent_version: 2 }, None, t(1));
        assert_eq!(first.agent_version, Some(2));
        let later = compute_status(
            Some(&first),
            Some(1),
            &Resolution::Ready { agent_version: 5 },
            None,
            t(2),
        );
        assert_eq!(later.agent_version, Some(2));
    }

    #[test]
    fn recovery_flips_ready_and_moves_transition_time() {
        let r = Resolution::Problem {
            reason: reasons::ENVIRONMENT_NOT_FOUND,
            message: "no".into(),
            agent_version: Some(1),
        };
        let bad = compute_status(None, Some(1), &r, None, t(1));
        let good = compute_status(
            Some(&bad),
            Some(1),
            &Resolution::Ready { agent_version: 1 },
            None,
            t(9),
        );
        let ready = conditions::find(&good.conditions, types::READY).unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_transition_time.0, t(9));
    }

    #[test]
    fn the_isolation_verdict_stands_only_while_the_sandbox_is_ready() {
        let verdict = new_condition(
            sandbox::isolation::CONDITION,
            false,
            "NetworkPolicyNotEnforced",
            "reached",
            Some(1),
            t(1),
        );
        let ready = Resolution::Ready { agent_version: 1 };
        let with_sandbox = |phase| SessionStatus {
            sandbox: Some(SandboxStatus {
                phase: Some(phase),
                ..SandboxStatus::default()
            }),
            conditions: vec![verdict.clone()],
            ..SessionStatus::default()
        };
        let kept = compute_status(
            Some(&with_sandbox(SandboxPhase::Ready)),
            Some(1),
            &ready,
            None,
            t(2),
        );
        assert!(conditions::find(&kept.conditions, sandbox::isolation::CONDITION).is_some());
        let reaped = compute_status(
            Some(&with_sandbox(SandboxPhase::Reaped)),
            Some(1),
            &ready,
            None,
            t(2),
        );
        assert!(conditions::find(&reaped.conditions, sandbox::isolation::CONDITION).is_none());
    }
}
