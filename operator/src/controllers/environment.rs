//! The Environment controller: validates the spec and checks it against the operator's sandbox policy, has its
//! sandboxes' NetworkPolicy and warm pool reconciled by [`crate::sandbox::reconcile_environment`], and reports
//! `Ready` (with the reason and the field when the spec is invalid or not allowed) and the pool's counts.

use std::{sync::Arc, time::Duration};

use corral_api::{
    Environment, EnvironmentSpec, EnvironmentStatus,
    conditions::{self, set_condition},
    validation::{SpecError, validate_environment},
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    runtime::{Controller, controller::Action, events::EventType, watcher},
};

use super::{agent::became_unready, error_policy, log_results, watched_api};
use crate::{
    context::{Context, backoff_key},
    error::{Error, Result},
    sandbox::{self, naming::WARM_LABEL, policy::SandboxPolicy},
    status::{apply_status, namespaced_api},
};

const CONTROLLER: &str = "environment";

/// Runs the Environment controller until `stop` completes.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let envs = watched_api::<Environment>(&ctx.client, ctx.watch_namespace.as_deref());
    let pods = watched_api::<Pod>(&ctx.client, ctx.watch_namespace.as_deref());
    let warm = format!("{WARM_LABEL}=true");
    let stream = Controller::new(envs, watcher::Config::default().any_semantic())
        .owns(pods, watcher::Config::default().labels(&warm))
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.concurrency))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy::<Environment>(CONTROLLER), ctx);
    log_results(CONTROLLER, stream).await;
}

async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let api: Api<Environment> = namespaced_api(&ctx.client, env.as_ref())?;
    let problem = check_spec(&env.spec, &ctx.sandbox.policy).err();
    let ns = env.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let warm = match problem {
        Some(_) => None,
        None => Some(sandbox::reconcile_environment(&ctx, &ns, &env).await?),
    };
    let mut status = compute_status(
        env.status.as_ref(),
        env.metadata.generation,
        problem.as_ref(),
        Timestamp::now(),
    );
    if warm.is_some() {
        status.warm_pool = warm.clone();
    }
    let old = env.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
    let notify = became_unready(old, &status.conditions);
    apply_status(&api, env.as_ref(), &status).await?;
    if let (Some(p), true) = (&problem, notify) {
        ctx.publish(
            env.as_ref(),
            EventType::Warning,
            p.reason,
            p.to_string(),
            "Validate",
        )
        .await;
    }
    ctx.backoff.succeeded(&backoff_key(env.as_ref()));
    Ok(match problem {
        // A claim takes a pod out of the pool without touching the Environment: look again soon to refill it.
        None if warm.is_some_and(|w| w.desired > 0) => Action::requeue(Duration::from_secs(5)),
        None => Action::requeue(Duration::from_secs(600)),
        Some(_) => Action::await_change(),
    })
}

/// Why an Environment gets no sandboxes, if it does not: its spec cannot work, or it asks for what the platform's
/// sandbox policy does not allow.
pub fn check_spec(spec: &EnvironmentSpec, policy: &SandboxPolicy) -> Result<(), SpecError> {
    validate_environment(spec)?;
    policy.check(&spec.sandbox)
}

/// The Environment's status from the outcome of this reconcile.
pub fn compute_status(
    previous: Option<&EnvironmentStatus>,
    generation: Option<i64>,
    problem: Option<&SpecError>,
    now: Timestamp,
) -> EnvironmentStatus {
    let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
    let message = problem.map(ToString::to_string);
    let condition = conditions::ready(
        problem.map(|p| p.reason).zip(message.as_deref()),
        "the environment is ready",
        generation,
        now,
    );
    set_condition(&mut conditions, condition);
    EnvironmentStatus {
        observed_generation: generation,
        warm_pool: previous.and_then(|s| s.warm_pool.clone()),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use corral_api::conditions::{reasons, types};

    use super::*;

    #[test]
    fn bad_idle_timeout_is_an_invalid_spec_naming_the_field() {
        let mut spec = EnvironmentSpec::default();
        spec.sandbox.idle_timeout = Some("5s".into());
        let err = validate_environment(&spec).unwrap_err();
        let status = compute_status(None, Some(1), Some(&err), Timestamp::from_second(1).unwrap());
        let ready = conditions::find(&status.conditions, types::READY).unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, reasons::INVALID_SPEC);
        assert!(
            ready.message.contains("spec.sandbox.idleTimeout"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn default_spec_is_ready() {
        let spec = EnvironmentSpec::default();
        assert!(validate_environment(&spec).is_ok());
        let status = compute_status(None, Some(1), None, Timestamp::from_second(1).unwrap());
        assert!(conditions::is_true(&status.conditions, types::READY));
    }

    #[test]
    fn a_spec_the_sandbox_policy_refuses_is_not_ready_and_says_what_is_allowed() {
        let spec: EnvironmentSpec =
            serde_json::from_value(serde_json::json!({"sandbox": {"runtimeClassName": "runc"}})).unwrap();
        let policy = SandboxPolicy::parse(r#"{"runtimeClasses": ["gvisor"]}"#).unwrap();
        let err = check_spec(&spec, &policy).unwrap_err();
        let status = compute_status(None, Some(1), Some(&err), Timestamp::from_second(1).unwrap());
        let ready = conditions::find(&status.conditions, types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NotAllowed")
        );
        assert_eq!(
            ready.message,
            "spec.sandbox.runtimeClassName: RuntimeClass \"runc\" is not allowed by the operator's sandbox policy \
             (allowed: gvisor)"
        );
    }
}
