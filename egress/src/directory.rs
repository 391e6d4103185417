//! Who a proxy client is: from a sandbox pod to what it may reach and which credentials its session's vaults
//! bind. Backed by watches of pods, sessions, environments and agents, and of the Secrets credentials come from:
//! the per-sandbox grants the operator writes into one namespace (the proxy reads no other Secret), or every vault
//! credential Secret of the cluster.

use std::{collections::BTreeMap, sync::Arc};

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

/// Where the proxy finds the credentials of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Grant Secrets in `namespace`, one per sandbox pod (`corral_api::egress::grant_name`): the proxy needs read
    /// access to Secrets of that namespace only.
    Grants {
        /// The grants namespace.
        namespace: String,
    },
    /// Vault credential Secrets in every namespace (needs cluster-wide read access to Secrets).
    Vaults,
}

/// The credentials a grant Secret hands over for `session`: none when the grant was written for another session
/// (a stale grant never serves a new session).
pub fn granted(grant: &Secret, session: &str) -> Vec<Credential> {
    let for_session = grant
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SESSION))
        .is_some_and(|s| s == session);
    let Some(data) = grant
        .data
        .as_ref()
        .and_then(|d| d.get(corral_api::egress::GRANT_CREDENTIALS_KEY))
        .filter(|_| for_session)
    else {
        return vec![];
    };
    let Ok(auths) = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&data.0) else {
        tracing::warn!(grant = ?grant.metadata.name, "unreadable credential grant");
        return vec![];
    };
    auths
        .iter()
        .filter_map(|(id, auth)| Credential::from_auth(id, &serde_json::to_vec(auth).ok()?))
        .collect()
}

/// A [`Directory`] over the cluster's objects.
#[derive(Clone)]
pub struct ClusterDirectory {
    pods: Store<Pod>,
    sessions: Store<Session>,
    environments: Store<Environment>,
    agents: Store<Agent>,
    secrets: Store<Secret>,
    source: Credentials,
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
    /// Starts the watches (in every namespace, Secrets only where `source` says); the returned future drives them.
    pub fn start(client: Client, source: Credentials) -> (Self, impl futures::Future<Output = ()>) {
        let sandboxes = watcher::Config::default().labels(&format!(
            "{}={}",
            labels::COMPONENT,
            corral_sandbox_protocol::pod::POD_COMPONENT
        ));
        let (pods, a) = watch(Api::<Pod>::all(client.clone()), sandboxes);
        let (sessions, b) = watch(Api::<Session>::all(client.clone()), watcher::Config::default());
        let (environments, c) = watch(
            Api::<Environment>::all(client.clone()),
            watcher::Config::default(),
        );
        let (agents, d) = watch(Api::<Agent>::all(client.clone()), watcher::Config::default());
        let (secret_api, selector) = match &source {
            Credentials::Grants { namespace } => (
                Api::<Secret>::namespaced(client, namespace),
                format!("corral.dev/object={}", corral_api::egress::GRANT_OBJECT),
            ),
            Credentials::Vaults => (Api::<Secret>::all(client), CREDENTIAL_SELECTOR.to_owned()),
        };
        let (secrets, e) = watch(secret_api, watcher::Config::default().labels(&selector));
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
                source,
            },
            driver,
        )
    }

    fn credentials(&self, namespace: &str, pod: &str, session: &Session) -> Vec<Credential> {
        if let Credentials::Grants { namespace: grants } = &self.source {
            let name = corral_api::egress::grant_name(namespace, pod);
            let session_name = session.metadata.name.as_deref().unwrap_or_default();
            return self
                .secrets
                .get(&ObjectRef::new(&name).within(grants))
                .map(|grant| granted(&grant, session_name))
                .unwrap_or_default();
        }
        self.secrets
            .state()
            .iter()
            .filter_map(|s| corral_api::egress::session_credential(session, s))
            .filter_map(|(id, auth)| Credential::from_auth(id, auth))
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
    fn sandbox(&self, namespace: &str, pod_name: &str) -> Option<SandboxContext> {
        let pod = self.pods.get(&ObjectRef::new(pod_name).within(namespace))?;
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
            credentials: self.credentials(namespace, pod_name, &session),
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

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn grant(session: &str, credentials: serde_json::Value) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(corral_api::egress::grant_name("team", "sandbox-s1")),
                labels: Some(BTreeMap::from([(labels::SESSION.to_owned(), session.to_owned())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                corral_api::egress::GRANT_CREDENTIALS_KEY.to_owned(),
                ByteString(serde_json::to_vec(&credentials).unwrap()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn a_grant_hands_over_its_sessions_credentials_only() {
        let credentials = serde_json::json!({
            "vcrd-1": {"type": "environment_variable", "secret_name": "API_TOKEN", "secret_value": "s3cret",
                       "networking": {"type": "limited", "allowed_hosts": ["api.example.com"]}},
            "vcrd-2": {"type": "static_bearer", "mcp_server_url": "https://m", "token": "t"},
        });
        let granted_now = granted(&grant("s1", credentials.clone()), "s1");
        assert_eq!(
            granted_now.len(),
            1,
            "only environment_variable credentials are injected"
        );
        assert_eq!(granted_now[0].id, "vcrd-1");
        assert_eq!(granted_now[0].value, "s3cret");
        assert!(
            granted(&grant("s0", credentials), "s1").is_empty(),
            "a stale grant of another session"
        );
        assert!(granted(&grant("s1", serde_json::json!("nonsense")), "s1").is_empty());
    }
}
