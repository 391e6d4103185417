//! The controllers, one module per kind, and what they share. Sandboxes have their own module, [`crate::sandbox`].

pub mod agent;
pub mod environment;
pub mod harness;
pub mod session;

use std::{fmt::Debug, future::Future, sync::Arc};

use kube::{Api, Client, Resource, runtime::controller::Action};
use serde::de::DeserializeOwned;

use crate::{context::Context, error::Error};

/// Runs every controller until `stop` completes.
pub async fn run_all(ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let stop = futures::FutureExt::shared(stop);
    tokio::join!(
        agent::run(ctx.clone(), stop.clone()),
        environment::run(ctx.clone(), stop.clone()),
        session::run(ctx, stop),
    );
}

/// The Api over the watched namespace, or all namespaces.
pub fn watched_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Error policy shared by the controllers: count the failure and retry with per-object backoff. No I/O here.
pub fn error_policy<K>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    move |obj, error, ctx| {
        if error.namespace_terminating() {
            tracing::debug!(controller, "namespace terminating; not retrying");
            return Action::await_change();
        }
        ctx.metrics.failure(controller, error.metric_label());
        let delay = ctx.backoff.failed(crate::context::backoff_key(obj.as_ref()));
        tracing::warn!(controller, error = %error, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }
}

/// Logs the outcome of each reconcile reported by a controller stream.
pub async fn log_results<S, T, E>(controller: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    T: Debug,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    stream
        .for_each(|res| async move {
            match res {
                Ok(obj) => tracing::debug!(controller, object = ?obj, "reconciled"),
                Err(e) => tracing::debug!(controller, error = %e, "reconcile did not complete"),
            }
        })
        .await;
}
