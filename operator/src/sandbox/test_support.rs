//! Fixtures shared by the sandbox builders' tests.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use corral_api::{Environment, EnvironmentSpec};
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::{
    Client,
    client::Body,
    runtime::events::{Recorder, Reporter},
};

use super::{EgressConfig, naming::SandboxOwner};
use crate::{backoff::Backoff, context::Context, metrics::Metrics};

/// Environment `team/py` with this spec.
pub fn env(spec: serde_json::Value) -> Environment {
    let spec: EnvironmentSpec = serde_json::from_value(spec).unwrap();
    let mut e = Environment::new("py", spec);
    e.metadata.namespace = Some("team".into());
    e.metadata.uid = Some("env-uid".into());
    e
}

/// A controller owner reference of this kind.
pub fn owner(kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: "corral.dev/v1alpha1".into(),
        kind: kind.into(),
        name: "x".into(),
        uid: "u".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }
}

/// Session `s1`'s own pod.
pub fn session_owner() -> SandboxOwner {
    SandboxOwner::Session {
        name: "s1".into(),
        owner: owner("Session"),
    }
}

/// Session `s1`'s pod of `e` under the default configuration.
pub fn session_pod(e: &Environment) -> Pod {
    super::build_sandbox_pod(
        "team",
        e,
        &session_owner(),
        "sandbox-s1",
        &super::SandboxConfig::default(),
    )
}

/// An egress proxy with a known key.
pub fn egress() -> EgressConfig {
    EgressConfig {
        address: "10.96.0.20:3128".into(),
        namespace: "corral-system".into(),
        key: b"0123456789abcdef".to_vec(),
        ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
    }
}

/// Asserts that nothing in the pod can escalate: no credentials, non-root, no capabilities, seccomp, limits.
pub fn assert_locked_down(pod: &Pod) {
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.automount_service_account_token,
        Some(false),
        "no service account token"
    );
    assert_eq!(
        spec.enable_service_links,
        Some(false),
        "no Service addresses in the environment"
    );
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .all(|v| v.secret.is_none() && v.projected.is_none()),
        "no Secret is mounted: the daemon gets only its token's digest"
    );
    let psc = spec.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.privileged, Some(false), "{}", c.name);
        assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..]),
            "{}",
            c.name
        );
        assert_eq!(
            sc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault",
            "{}",
            c.name
        );
        assert!(
            c.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some(),
            "{} has limits",
            c.name
        );
    }
}

/// The API server's answer for an object that does not exist.
const NOT_FOUND: &[u8] =
    br#"{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404}"#;

/// A client whose API server answers like a real one for the calls provisioning makes, and records them.
pub fn recording_client() -> (Client, Arc<Mutex<Vec<String>>>) {
    recording_client_with(&[])
}

/// [`recording_client`] whose lists of `(path, items)` hold these items (JSON); other lists are empty.
pub fn recording_client_with(lists: &[(&str, serde_json::Value)]) -> (Client, Arc<Mutex<Vec<String>>>) {
    let lists: Arc<std::collections::BTreeMap<String, serde_json::Value>> =
        Arc::new(lists.iter().map(|(p, v)| ((*p).to_owned(), v.clone())).collect());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let service = tower::service_fn(move |req: http::Request<Body>| {
        let seen = seen.clone();
        let lists = lists.clone();
        async move {
            let (method, path) = (req.method().clone(), req.uri().path().to_owned());
            seen.lock().unwrap().push(format!("{method} {path}"));
            let is_list = path.ends_with("/pods") || path.ends_with("/secrets");
            let (status, body) = match method.as_str() {
                // Server-side apply answers with the object applied.
                "PATCH" => (200, req.into_body().collect_bytes().await?.to_vec()),
                "DELETE"
                    if lists
                        .values()
                        .flat_map(|v| v.as_array().into_iter().flatten())
                        .any(|o| {
                            path.ends_with(&format!("/{}", o["metadata"]["name"].as_str().unwrap_or("-")))
                        }) =>
                {
                    (
                        200,
                        br#"{"apiVersion":"v1","kind":"Status","status":"Success"}"#.to_vec(),
                    )
                }
                "GET" if is_list => {
                    let items = lists.get(&path).cloned().unwrap_or(serde_json::json!([]));
                    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
                    (200, serde_json::to_vec(&list)?)
                }
                _ => (404, NOT_FOUND.to_vec()),
            };
            let response = http::Response::builder().status(status).body(Body::from(body))?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
        }
    });
    (Client::new(service, "default"), calls)
}

/// A client whose API server answers `GET`s with what `answer(path)` gives (404 for `None`) and everything else
/// with 404.
pub fn answering_client(
    answer: impl Fn(&str) -> Option<serde_json::Value> + Send + Sync + 'static,
) -> Client {
    let answer = Arc::new(answer);
    let service = tower::service_fn(move |req: http::Request<Body>| {
        let answer = answer.clone();
        async move {
            let found = (req.method() == http::Method::GET)
                .then(|| answer(req.uri().path()))
                .flatten();
            let (status, body) = match found {
                Some(value) => (200, serde_json::to_vec(&value)?),
                None => (404, NOT_FOUND.to_vec()),
            };
            let response = http::Response::builder().status(status).body(Body::from(body))?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
        }
    });
    Client::new(service, "default")
}

pub fn context(client: Client) -> Context {
    let mut registry = prometheus_client::registry::Registry::default();
    Context {
        recorder: Recorder::new(client.clone(), Reporter::from("test")),
        client,
        metrics: Metrics::register(&mut registry),
        session_log: None,
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(1)),
        watch_namespace: None,
        concurrency: 1,
        sandbox: crate::sandbox::SandboxConfig::default(),
        isolation: Arc::default(),
        harness: None,
        harness_locks: Default::default(),
    }
}

/// A context whose token store is a real, throw-away redis-server (kept alive by the returned handle).
pub async fn context_with_redis(client: Client) -> (Context, corral_session::testing::RedisServer) {
    let redis = corral_session::testing::RedisServer::start().expect("redis-server starts");
    let mut ctx = context(client);
    ctx.session_log = Some(
        crate::context::connect_session_log(&redis.url())
            .await
            .expect("connects to redis"),
    );
    (ctx, redis)
}

/// The token stored for `pod`, if any.
pub async fn stored_token(ctx: &Context, ns: &str, pod: &str) -> Option<String> {
    let mut conn = ctx.session_log.clone()?;
    redis::cmd("GET")
        .arg(corral_session::keys::Tenant::new(ns).sandbox_token(pod))
        .query_async(&mut conn)
        .await
        .ok()?
}
