//! Agents from the Kubernetes API: the Session names its agent and pinned version; the version's spec is the
//! Agent's ControllerRevision `<agent>-v<version>`; the provider's key and script come from the referenced Secret
//! (only one meant as a model key, see [`corral_api::model_key`]) and ConfigMap. Built providers are cached per
//! agent version for a minute, so keys rotate without a restart; an Environment's provisioning mode is cached for a
//! minute too. With the namespace's Session watch ([`KubeAgentSource::with_sessions`]) the Session itself comes from
//! its cache, no older than the spec generation the gateway recorded in Redis (see `docs/redis.md`): a wake-up then
//! reads nothing from the API server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use corral_api::environment::Provisioning;
use corral_api::{Agent, Environment, Session, revision};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::ResolvedAgent;
use super::manifest::secret_value;
use super::source::{AgentFuture, AgentSource, LoadError};
use crate::providers::{self, ApiKey, ProviderInputs};
use crate::tools::sessions::Sessions;

/// How long a built agent is reused.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// Built agents by (namespace, agent, version), with when they were built.
type Cache = HashMap<(String, String, i64), (Instant, Arc<ResolvedAgent>)>;

/// Whether each Environment provisions eagerly, by (namespace, environment), with when it was read.
type EagerCache = HashMap<(String, String), (Instant, bool)>;

/// Loads agents through the Kubernetes API.
#[derive(Clone)]
pub struct KubeAgentSource {
    client: Client,
    skills: Option<Arc<crate::skills::SkillLoader>>,
    /// The Session watch's cache, and the session logs where the gateway records the spec generations it answered.
    sessions: Option<(Sessions, corral_session::Store)>,
    cache: Arc<Mutex<Cache>>,
    eager: Arc<Mutex<EagerCache>>,
}

impl std::fmt::Debug for KubeAgentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAgentSource").finish_non_exhaustive()
    }
}

fn api_error(err: kube::Error) -> LoadError {
    match &err {
        kube::Error::Api(status) if status.code == 404 => LoadError::Invalid(err.to_string()),
        _ => LoadError::Unavailable(err.to_string()),
    }
}

impl KubeAgentSource {
    /// A source using `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            skills: None,
            sessions: None,
            cache: Arc::default(),
            eager: Arc::default(),
        }
    }

    /// Reads agents' skills through `loader` (without one, an agent with skills cannot run, saying why).
    #[must_use]
    pub fn with_skills(mut self, loader: Arc<crate::skills::SkillLoader>) -> Self {
        self.skills = Some(loader);
        self
    }

    /// Reads Sessions through `sessions` (the namespace's watch), no older than the spec generation the gateway
    /// recorded in `log`.
    #[must_use]
    pub fn with_sessions(mut self, sessions: Sessions, log: corral_session::Store) -> Self {
        self.sessions = Some((sessions, log));
        self
    }

    /// The session: from the watch's cache when it has a spec as new as the gateway answered for, else from the API
    /// server.
    async fn session(&self, namespace: &str, session: &str) -> Result<Arc<Session>, LoadError> {
        let found = match &self.sessions {
            Some((sessions, log)) => {
                let answered = log
                    .session(namespace, session)
                    .spec_generation()
                    .await
                    .map_err(|e| {
                        LoadError::Unavailable(format!("cannot read the session's spec generation: {e}"))
                    })?;
                sessions
                    .find_at_least(namespace, session, answered, "agent")
                    .await
            }
            None => {
                let sessions: Api<Session> = Api::namespaced(self.client.clone(), namespace);
                sessions.get_opt(session).await.map(|s| s.map(Arc::new))
            }
        };
        found
            .map_err(api_error)?
            .ok_or_else(|| LoadError::NoSession(session.to_owned()))
    }

    async fn load_inner(&self, namespace: &str, session: &str) -> Result<Arc<ResolvedAgent>, LoadError> {
        let session_obj = self.session(namespace, session).await?;
        let agent = self.agent_of(namespace, &session_obj).await?;
        let sandbox_up_front = self.sandbox_up_front(namespace, &session_obj).await?;
        if session_obj.spec.budget.is_none() && !sandbox_up_front {
            return Ok(agent);
        }
        Ok(Arc::new(ResolvedAgent {
            budget: session_obj.spec.budget.clone().or_else(|| agent.budget.clone()),
            sandbox_up_front,
            ..(*agent).clone()
        }))
    }

    /// Whether the session's Environment provisions its sandbox eagerly (read at most once a minute). A missing
    /// Environment counts as lazy: the operator reports it on the Session, and a tool call then fails with the
    /// reason.
    async fn sandbox_up_front(&self, namespace: &str, session_obj: &Session) -> Result<bool, LoadError> {
        let name = &session_obj.spec.environment_ref.name;
        let key = (namespace.to_owned(), name.clone());
        if let Some((at, eager)) = self
            .eager
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(*eager);
        }
        let environments: Api<Environment> = Api::namespaced(self.client.clone(), namespace);
        let environment = environments.get_opt(name).await.map_err(api_error)?;
        let eager = environment.and_then(|e| e.spec.sandbox.provisioning) == Some(Provisioning::Eager);
        self.eager
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (Instant::now(), eager));
        Ok(eager)
    }

    /// The (cached) agent at the version `session` runs.
    async fn agent_of(
        &self,
        namespace: &str,
        session_obj: &Session,
    ) -> Result<Arc<ResolvedAgent>, LoadError> {
        let agent_name = session_obj.spec.agent.name.clone();
        let version = session_obj.effective_agent_version();
        let key = (namespace.to_owned(), agent_name.clone(), version.unwrap_or(0));
        if let Some((at, agent)) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(agent.clone());
        }
        let spec = match version {
            Some(version) => {
                let revisions: Api<ControllerRevision> = Api::namespaced(self.client.clone(), namespace);
                let name = revision::revision_name(&agent_name, version);
                let rev = revisions.get(&name).await.map_err(api_error)?;
                revision::parse_revision(&rev)
                    .ok_or_else(|| LoadError::Invalid(format!("agent revision {name} does not parse")))?
                    .spec
            }
            None => {
                let agents: Api<Agent> = Api::namespaced(self.client.clone(), namespace);
                agents.get(&agent_name).await.map_err(api_error)?.spec
            }
        };
        let provider_config = &spec.model.provider;
        let mut inputs = ProviderInputs::default();
        if let Some(reference) = &provider_config.api_key_secret_ref {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let secret = secrets.get(&reference.name).await.map_err(api_error)?;
            // The key goes to the model's base URL, which the Agent's author chooses: only a Secret meant as a
            // model key may be named (never a vault credential or a Secret Corral keeps for itself).
            if let Some(refusal) = corral_api::model_key::refusal(&secret) {
                return Err(LoadError::Invalid(format!(
                    "spec.model.provider.apiKeySecretRef: {refusal}"
                )));
            }
            let key = secret_value(&secret, &reference.key).ok_or_else(|| {
                LoadError::Invalid(format!("Secret {} has no key {}", reference.name, reference.key))
            })?;
            inputs.api_key = Some(ApiKey::new(key));
        }
        if let Some(reference) = &provider_config.script_ref {
            let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
            let map = maps.get(&reference.name).await.map_err(api_error)?;
            let script = map
                .data
                .as_ref()
                .and_then(|d| d.get(&reference.key))
                .ok_or_else(|| {
                    LoadError::Invalid(format!(
                        "ConfigMap {} has no key {}",
                        reference.name, reference.key
                    ))
                })?;
            inputs.script = Some(script.clone());
        }
        let provider = providers::build(provider_config, inputs)?;
        let skills = match &self.skills {
            Some(loader) => loader
                .load_all(namespace, &spec.skills)
                .await
                .map_err(|e| match e {
                    crate::skills::SkillError::Missing(why) => {
                        LoadError::Invalid(format!("spec.skills: {why}"))
                    }
                    crate::skills::SkillError::Unavailable(why) => LoadError::Unavailable(why),
                })?,
            None if !spec.skills.is_empty() => {
                return Err(LoadError::Invalid(
                    "spec.skills: this harness has no gateway to read skills from (--gateway-url)".into(),
                ));
            }
            None => Vec::new(),
        };
        let agent = Arc::new(ResolvedAgent {
            skills,
            ..ResolvedAgent::new(agent_name, spec, provider)
        });
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (Instant::now(), agent.clone()));
        Ok(agent)
    }
}

impl AgentSource for KubeAgentSource {
    fn load<'a>(&'a self, namespace: &'a str, session: &'a str) -> AgentFuture<'a> {
        Box::pin(self.load_inner(namespace, session))
    }
}
