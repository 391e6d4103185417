//! Who a proxy client is: from a sandbox pod to what it may reach and which credentials its session's vaults
//! bind. Backed by watches of pods, sessions, environments, agents and vault credential Secrets.

use std::{collections::BTreeSet, sync::Arc};

use corral_api::{Agent, Environment, Session, labels};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt, reflector,
        reflector::{ObjectRef, Store},
        watcher,
    },
};

use crate::{credentials::Credential, policy::HostPolicy};

/// What one sandbox may do on the network.
#[derive(Debug, Clone, Default)]
pub struct SandboxContext {
    /// Where it may go.
    pub policy: HostPolicy,
    /// The credentials its session's vaults bind (none for an unclaimed warm pod).
    pub credentials: Vec<Credential>,
}

/// Finds the context of a sandbox pod.
pub trait Directory: Send + Sync + 'static {
    /// The context of pod `namespace/pod`, `None` when it is not a known sandbox.
    fn sandbox(&self, namespace: &str, pod: &str) -> Option<SandboxContext>;
    /// Whether the watches have listed everything once.
    fn ready(&self) -> bool;
}

/// The label of vault credential Secrets.
const CREDENTIAL_SELECTOR: &str = "corral.dev/object=vault-credential";

/// A [`Directory`] over the cluster's objects.
#[derive(Clone)]
pub struct ClusterDirectory {
    pods: Store<Pod>,
    sessions: Store<Session>,
    environments: Store<Environment>,
    agents: Store<Agent>,
    secrets: Store<Secret>,
}

fn watch<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, impl futures::Future<Output = ()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let driver = async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                tracing::warn!(error = %e, "watch error; retrying");
            }
        }
    };
    (reader, driver)
}

impl ClusterDirectory {
    /// Starts the watches (in every namespace); the returned future drives them.
    pub fn start(client: Client) -> (Self, impl futures::Future<Output = ()>) {
        let sandboxes = watcher::Config::default().labels(&format!("{}=sandbox", labels::COMPONENT));
        let (pods, a) = watch(Api::<Pod>::all(client.clone()), sandboxes);
        let (sessions, b) = watch(Api::<Session>::all(client.clone()), watcher::Config::default());
        let (environments, c) = watch(
            Api::<Environment>::all(client.clone()),
            watcher::Config::default(),
        );
        let (agents, d) = watch(Api::<Agent>::all(client.clone()), watcher::Config::default());
        let (secrets, e) = watch(
            Api::<Secret>::all(client),
            watcher::Config::default().labels(CREDENTIAL_SELECTOR),
        );
        let driver = async move {
            tokio::join!(a, b, c, d, e);
        };
        (
            Self {
                pods,
                sessions,
                environments,
                agents,
                secrets,
            },
            driver,
        )
    }

    fn credentials(&self, namespace: &str, session: &Session) -> Vec<Credential> {
        let vaults: BTreeSet<&str> = session.spec.vault_refs.iter().map(|r| r.name.as_str()).collect();
        self.secrets
            .state()
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("corral.dev/vault"))
                    .is_some_and(|v| vaults.contains(v.as_str()))
            })
            .filter(|s| {
                s.metadata
                    .annotations
                    .as_ref()
                    .is_none_or(|a| !a.contains_key(labels::ARCHIVED_AT))
            })
            .filter_map(|s| {
                let id = s.metadata.name.as_deref()?;
                let auth = s.data.as_ref()?.get("auth")?;
                Credential::from_auth(id, &auth.0)
            })
            .collect()
    }

    fn mcp_hosts(&self, namespace: &str, session: &Session) -> Vec<String> {
        let Some(agent) = self
            .agents
            .get(&ObjectRef::new(&session.spec.agent.name).within(namespace))
        else {
            return vec![];
        };
        agent
            .spec
            .mcp_servers
            .iter()
            .filter_map(|s| {
                let rest = s.url.split_once("://")?.1;
                let authority = rest.split(['/', '?', '#']).next()?;
                Some(
                    authority
                        .rsplit_once('@')
                        .map_or(authority, |(_, h)| h)
                        .to_owned(),
                )
            })
            .collect()
    }
}

impl Directory for ClusterDirectory {
    fn sandbox(&self, namespace: &str, pod: &str) -> Option<SandboxContext> {
        let pod = self.pods.get(&ObjectRef::new(pod).within(namespace))?;
        let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
        let environment = self
            .environments
            .get(&ObjectRef::new(pod_labels.get(labels::ENVIRONMENT)?).within(namespace))?;
        let session = pod_labels
            .get(labels::SESSION)
            .and_then(|s| self.sessions.get(&ObjectRef::new(s).within(namespace)));
        let Some(session) = session else {
            // An unclaimed warm pod: its Environment's rules, no credentials.
            return Some(SandboxContext {
                policy: HostPolicy::new(&environment.spec.config.networking, &[]),
                credentials: vec![],
            });
        };
        Some(SandboxContext {
            policy: HostPolicy::new(
                &environment.spec.config.networking,
                &self.mcp_hosts(namespace, &session),
            ),
            credentials: self.credentials(namespace, &session),
        })
    }

    fn ready(&self) -> bool {
        use futures::FutureExt;
        [
            self.pods.wait_until_ready().boxed(),
            self.sessions.wait_until_ready().boxed(),
            self.environments.wait_until_ready().boxed(),
            self.agents.wait_until_ready().boxed(),
            self.secrets.wait_until_ready().boxed(),
        ]
        .into_iter()
        .all(|f| matches!(f.now_or_never(), Some(Ok(()))))
    }
}

/// A fixed directory (the proxy's own tests, and a proxy run outside a cluster).
#[derive(Debug, Clone, Default)]
pub struct StaticDirectory(pub Arc<std::collections::BTreeMap<(String, String), SandboxContext>>);

impl Directory for StaticDirectory {
    fn sandbox(&self, namespace: &str, pod: &str) -> Option<SandboxContext> {
        self.0.get(&(namespace.to_owned(), pod.to_owned())).cloned()
    }
    fn ready(&self) -> bool {
        true
    }
}
