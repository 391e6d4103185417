//! Runs the harness of a namespace: whenever an Agent of the namespace is reconciled, the harness objects are
//! applied, owned by every Agent there, so the harness exists exactly while the namespace has Agents.

use corral_api::{Agent, labels};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde::Serialize;

use crate::{
    builders::harness::{HARNESS_NAME, build_harness},
    context::Context,
    error::Result,
};

/// Applies the harness objects of `ns`.
pub async fn ensure(ctx: &Context, ns: &str) -> Result<()> {
    let Some(config) = &ctx.harness else {
        return Ok(());
    };
    let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), ns);
    let list = agents.list(&ListParams::default()).await?.items;
    if list.iter().all(|a| a.metadata.deletion_timestamp.is_some()) {
        return Ok(());
    }
    let objs = build_harness(ns, &list, config);
    apply(ctx, ns, &objs.service_account).await?;
    apply(ctx, ns, &objs.role).await?;
    apply(ctx, ns, &objs.role_binding).await?;
    if let Some(secret) = &objs.redis_secret {
        apply(ctx, ns, secret).await?;
    }
    apply(ctx, ns, &objs.deployment).await?;
    apply(ctx, ns, &objs.pdb).await?;
    Ok(())
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
    api.patch(HARNESS_NAME, &params, &Patch::Apply(obj)).await?;
    tracing::debug!(namespace = ns, kind = %K::kind(&()), name = %obj.name_any(), "applied harness object");
    Ok(())
}
