//! Runs the harness of each tenant namespace in the system namespace: whenever an Agent of the namespace is
//! reconciled, its Redis user is ensured and the harness objects applied ([`ensure`]). When the namespace's last
//! Agent is deleted (or the namespace with it), a watch on Agents removes the harness objects and the Redis user at
//! once ([`run_removals`]); owner references cannot cross namespaces. A sweep ([`run_sweeper`]) is the backstop:
//! it removes what a missed deletion left and re-ensures the Redis users of the others, so a Redis that lost its
//! ACL file gets them back. Ensuring and removing one namespace's harness never overlap ([`Locks`]).

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use corral_api::{Agent, labels};
use corral_session::acl;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, ServiceAccount},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use serde::Serialize;

use crate::{
    builders::harness::{
        HARNESS_NAME, HarnessConfig, REDIS_PASSWORD_KEY, TENANT_LABEL, TenantRedis, build_harness,
        harness_name,
    },
    context::Context,
    controllers::watched_api,
    error::{Error, Result},
};

/// How often the sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(20);

/// One lock per tenant namespace: its harness is ensured or removed by one task at a time, so a removal that found
/// no Agent cannot delete what an ensure for a new Agent just applied.
#[derive(Default)]
pub struct Locks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Locks {
    async fn lock(&self, ns: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(ns.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Applies the harness objects of tenant namespace `ns`, when it has an Agent that is not being deleted.
pub async fn ensure(ctx: &Context, ns: &str) -> Result<()> {
    let _locked = ctx.harness_locks.lock(ns).await;
    ensure_locked(ctx, ns).await
}

async fn ensure_locked(ctx: &Context, ns: &str) -> Result<()> {
    let Some(config) = &ctx.harness else {
        return Ok(());
    };
    let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), ns);
    let list = agents.list(&ListParams::default()).await?.items;
    if list.iter().all(|a| a.metadata.deletion_timestamp.is_some()) {
        return Ok(());
    }
    let redis = tenant_redis(ctx, config, ns).await?;
    let objs = build_harness(ns, &list, config, redis.as_ref());
    let system = config.namespace.as_str();
    apply(ctx, system, &objs.service_account).await?;
    apply(ctx, ns, &objs.role).await?;
    apply(ctx, ns, &objs.role_binding).await?;
    if let Some(secret) = &objs.redis_secret {
        apply(ctx, system, secret).await?;
    }
    apply(ctx, system, &objs.deployment).await?;
    apply(ctx, system, &objs.pdb).await?;
    remove_legacy(ctx, ns).await
}

/// The Redis URL (and password) `ns`'s harness connects with: its own ACL user, created or reset here with the
/// password kept in its Secret (a new random one the first time), or the system URL without per-tenant users.
async fn tenant_redis(ctx: &Context, config: &HarnessConfig, ns: &str) -> Result<Option<TenantRedis>> {
    let Some(system_url) = &config.redis_url else {
        return Ok(None);
    };
    let (true, Some(log)) = (config.tenant_users, &ctx.session_log) else {
        return Ok(Some(TenantRedis {
            url: system_url.clone(),
            password: None,
        }));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &config.namespace);
    let kept = secrets
        .get_opt(&harness_name(ns))
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get(REDIS_PASSWORD_KEY).cloned())
        .and_then(|v| String::from_utf8(v.0).ok())
        .filter(|p| p.len() >= 32);
    let password = match kept {
        Some(p) => p,
        None => new_password()?,
    };
    acl::ensure_tenant_user(&mut log.clone(), ns, &password).await?;
    let url = acl::with_credentials(system_url, &acl::tenant_user(ns), &password)?;
    Ok(Some(TenantRedis {
        url,
        password: Some(password),
    }))
}

/// 40 random alphanumeric characters (URL-safe, about 238 bits).
fn new_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(40);
    while out.len() < 40 {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes).map_err(|e| Error::Randomness(e.to_string()))?;
        // 248 = 4 × 62: rejecting the bytes above it keeps every character equally likely.
        out.extend(
            bytes
                .iter()
                .filter(|b| **b < 248)
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .take(40 - out.len()),
        );
    }
    Ok(out)
}

/// Deletes what an older operator ran in the tenant namespace: the harness Deployment, its disruption budget,
/// ServiceAccount and the Secret with the Redis URL. Only objects that carry the harness labels go.
async fn remove_legacy(ctx: &Context, ns: &str) -> Result<()> {
    delete_if_harness::<Deployment>(ctx, ns, HARNESS_NAME).await?;
    delete_if_harness::<PodDisruptionBudget>(ctx, ns, HARNESS_NAME).await?;
    delete_if_harness::<Secret>(ctx, ns, HARNESS_NAME).await?;
    delete_if_harness::<ServiceAccount>(ctx, ns, HARNESS_NAME).await
}

async fn delete_if_harness<K>(ctx: &Context, ns: &str, name: &str) -> Result<()>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    let ours = obj.labels().get(labels::COMPONENT).map(String::as_str) == Some("harness")
        && obj.labels().get(labels::MANAGED_BY).map(String::as_str) == Some(labels::OPERATOR_FIELD_MANAGER);
    if ours {
        delete(&api, name).await?;
        tracing::info!(namespace = ns, kind = %K::kind(&()), name, "deleted a harness object left in the tenant namespace");
    }
    Ok(())
}

async fn delete<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<()>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Serialize,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force();
    api.patch(&obj.name_any(), &params, &Patch::Apply(obj)).await?;
    tracing::debug!(namespace = ns, kind = %K::kind(&()), name = %obj.name_any(), "applied harness object");
    Ok(())
}

/// Watches the Agents (their metadata) until `stop`, and removes a namespace's harness as soon as an Agent of it is
/// deleted (or marked for deletion) and none is left. A deletion missed while the watch restarts is the sweep's.
pub async fn run_removals(ctx: Arc<Context>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if ctx.harness.is_none() {
        return;
    }
    // Metadata only: `Api<PartialObjectMeta<_>>` asks for no specs.
    let agents = watched_api::<PartialObjectMeta<Agent>>(&ctx.client, ctx.watch_namespace.as_deref());
    let gone = watcher::watcher(agents, watcher::Config::default())
        .default_backoff()
        .try_filter_map(|event| async move {
            Ok(match event {
                watcher::Event::Delete(agent) => agent.namespace(),
                watcher::Event::Apply(agent) if agent.metadata.deletion_timestamp.is_some() => {
                    agent.namespace()
                }
                _ => None,
            })
        });
    let removals = gone.for_each(|ns| {
        let ctx = ctx.clone();
        async move {
            match ns {
                Ok(ns) => {
                    if let Err(e) = remove_if_unused(&ctx, &ns).await {
                        tracing::warn!(namespace = %ns, error = %e, "cannot remove the harness of a namespace without Agents; the sweep will");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the watch of Agent deletions failed; retrying"),
            }
        }
    });
    tokio::select! {
        () = removals => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Removes `ns`'s harness objects and Redis user when the namespace has no Agent left that is not being deleted;
/// returns whether it did.
pub async fn remove_if_unused(ctx: &Context, ns: &str) -> Result<bool> {
    let Some(config) = &ctx.harness else {
        return Ok(false);
    };
    let _locked = ctx.harness_locks.lock(ns).await;
    let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), ns);
    let live = agents
        .list_metadata(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|a| a.metadata.deletion_timestamp.is_none());
    if live {
        return Ok(false);
    }
    remove(ctx, config, ns).await?;
    Ok(true)
}

/// Sweeps every [`SWEEP_EVERY`] until `stop`.
pub async fn run_sweeper(ctx: Arc<Context>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if ctx.harness.is_none() {
        return;
    }
    loop {
        // A failed sweep (often a Redis connection broken by a restart, which reconnects by itself) is tried
        // again soon: the tenants' Redis users may be missing until it succeeds.
        let wait = match sweep(&ctx).await {
            Ok(()) => SWEEP_EVERY,
            Err(e) => {
                tracing::warn!(error = %e, "harness sweep failed");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One sweep: the tenants with harness objects in the system namespace either still have an Agent (their Redis
/// user is ensured again) or lose their harness objects and Redis user.
pub async fn sweep(ctx: &Context) -> Result<()> {
    let Some(config) = &ctx.harness else {
        return Ok(());
    };
    let system = config.namespace.as_str();
    let selector = ListParams::default().labels(&format!(
        "{}=harness,{}={},{TENANT_LABEL}",
        labels::COMPONENT,
        labels::MANAGED_BY,
        labels::OPERATOR_FIELD_MANAGER
    ));
    let mut tenants = BTreeSet::new();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), system);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), system);
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), system);
    for d in deployments.list_metadata(&selector).await?.items {
        tenants.extend(d.labels().get(TENANT_LABEL).cloned());
    }
    for s in secrets.list_metadata(&selector).await?.items {
        tenants.extend(s.labels().get(TENANT_LABEL).cloned());
    }
    for a in accounts.list_metadata(&selector).await?.items {
        tenants.extend(a.labels().get(TENANT_LABEL).cloned());
    }
    for tenant in tenants {
        if !remove_if_unused(ctx, &tenant).await? {
            refresh_user(ctx, config, &tenant).await?;
        }
    }
    Ok(())
}

/// Sets `tenant`'s Redis user again with the password in its Secret (a Redis restarted without its ACL file gets
/// it back); a tenant without that Secret gets its whole harness ensured.
async fn refresh_user(ctx: &Context, config: &HarnessConfig, tenant: &str) -> Result<()> {
    let (true, Some(log)) = (config.tenant_users, &ctx.session_log) else {
        return Ok(());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &config.namespace);
    let password = secrets
        .get_opt(&harness_name(tenant))
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get(REDIS_PASSWORD_KEY).cloned())
        .and_then(|v| String::from_utf8(v.0).ok());
    match password {
        Some(p) => Ok(acl::ensure_tenant_user(&mut log.clone(), tenant, &p).await?),
        None => ensure(ctx, tenant).await,
    }
}

/// Deletes `tenant`'s harness objects from the system namespace and its Redis user.
async fn remove(ctx: &Context, config: &HarnessConfig, tenant: &str) -> Result<()> {
    let system = config.namespace.as_str();
    let name = harness_name(tenant);
    delete(&Api::<Deployment>::namespaced(ctx.client.clone(), system), &name).await?;
    delete(
        &Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), system),
        &name,
    )
    .await?;
    delete(
        &Api::<ServiceAccount>::namespaced(ctx.client.clone(), system),
        &name,
    )
    .await?;
    if let (true, Some(log)) = (config.tenant_users, &ctx.session_log) {
        acl::delete_tenant_user(&mut log.clone(), tenant).await?;
    }
    delete(&Api::<Secret>::namespaced(ctx.client.clone(), system), &name).await?;
    tracing::info!(tenant, "removed the harness of a namespace without Agents");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
