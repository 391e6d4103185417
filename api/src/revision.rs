//! Agent versions as `ControllerRevision` objects: pure builders and the rule that decides the next version.
//!
//! Each version of an Agent's spec is snapshotted in a ControllerRevision named `<agent>-v<version>`, labelled with
//! the agent and version, owned by the Agent (so it is collected with it), with the spec's hash in an annotation.
//! A new version is created exactly when the spec's hash differs from the latest version's.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::apps::v1::ControllerRevision,
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, runtime::RawExtension},
};
use kube::Resource;

use crate::{
    agent::{Agent, AgentSpec},
    labels,
    validation::spec_hash,
};

/// One stored version of an Agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentVersion {
    /// The version number, from 1.
    pub version: i64,
    /// The hash of the spec it holds.
    pub hash: String,
    /// The spec it holds.
    pub spec: AgentSpec,
}

/// What reconciling an Agent's versions must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionDecision {
    /// The latest version already holds the current spec.
    Current(i64),
    /// The spec changed (or has no version yet): create this version.
    Create(i64),
}

/// Decides the Agent's version from the hashes of its stored versions and of its current spec.
pub fn decide_version(stored: &[(i64, String)], current_hash: &str) -> VersionDecision {
    match stored.iter().max_by_key(|(v, _)| *v) {
        Some((latest, hash)) if hash == current_hash => VersionDecision::Current(*latest),
        Some((latest, _)) => VersionDecision::Create(latest + 1),
        None => VersionDecision::Create(1),
    }
}

/// The name of the ControllerRevision holding `version` of agent `agent`.
pub fn revision_name(agent: &str, version: i64) -> String {
    format!("{agent}-v{version}")
}

/// Builds the ControllerRevision that snapshots `agent`'s current spec as `version`.
pub fn build_revision(agent: &Agent, version: i64) -> Result<ControllerRevision, serde_json::Error> {
    let name = agent.metadata.name.clone().unwrap_or_default();
    let hash = spec_hash(&agent.spec);
    let labels = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (
            labels::MANAGED_BY.to_owned(),
            labels::OPERATOR_FIELD_MANAGER.to_owned(),
        ),
        (labels::COMPONENT.to_owned(), "agent-revision".to_owned()),
        (labels::AGENT.to_owned(), name.clone()),
        (labels::AGENT_VERSION.to_owned(), version.to_string()),
    ]);
    Ok(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&name, version)),
            namespace: agent.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(labels::SPEC_HASH.to_owned(), hash)])),
            owner_references: agent.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        revision: version,
        data: Some(RawExtension(serde_json::to_value(&agent.spec)?)),
    })
}

/// Reads a stored version back from its ControllerRevision. `None` when the object is not an agent revision or its
/// data no longer parses.
pub fn parse_revision(revision: &ControllerRevision) -> Option<AgentVersion> {
    let hash = revision
        .metadata
        .annotations
        .as_ref()?
        .get(labels::SPEC_HASH)?
        .clone();
    let spec: AgentSpec = serde_json::from_value(revision.data.as_ref()?.0.clone()).ok()?;
    Some(AgentVersion {
        version: revision.revision,
        hash,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{ModelConfig, ProviderConfig};

    fn agent(system: &str) -> Agent {
        let mut a = Agent::new(
            "coder",
            AgentSpec {
                name: None,
                description: None,
                model: ModelConfig {
                    id: "claude-sonnet-4-5".into(),
                    effort: None,
                    inference_geo: None,
                    speed: None,
                    provider: ProviderConfig::default(),
                },
                system: Some(system.into()),
                tools: vec![],
                mcp_servers: vec![],
                skills: vec![],
                metadata: Default::default(),
                budget: None,
                total_budget: None,
            },
        );
        a.metadata.namespace = Some("team".into());
        a.metadata.uid = Some("uid-1".into());
        a
    }

    #[test]
    fn first_version_is_one() {
        assert_eq!(decide_version(&[], "h"), VersionDecision::Create(1));
    }

    #[test]
    fn unchanged_spec_keeps_the_latest_version() {
        let stored = vec![(1, "a".to_owned()), (2, "b".to_owned())];
        assert_eq!(decide_version(&stored, "b"), VersionDecision::Current(2));
    }

    #[test]
    fn changed_spec_creates_the_next_version_even_when_it_reverts_to_an_older_one() {
        let stored = vec![(2, "b".to_owned()), (1, "a".to_owned())];
        assert_eq!(decide_version(&stored, "c"), VersionDecision::Create(3));
        assert_eq!(decide_version(&stored, "a"), VersionDecision::Create(3));
    }

    #[test]
    fn revision_round_trips_and_is_owned_by_the_agent() {
        let a = agent("be brief");
        let rev = build_revision(&a, 4).unwrap();
        assert_eq!(rev.metadata.name.as_deref(), Some("coder-v4"));
        assert_eq!(rev.metadata.namespace.as_deref(), Some("team"));
        let owner = &rev.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Agent", "uid-1", Some(true))
        );
        let parsed = parse_revision(&rev).unwrap();
        assert_eq!(parsed.version, 4);
        assert_eq!(parsed.spec, a.spec);
        assert_eq!(parsed.hash, spec_hash(&a.spec));
    }

    #[test]
    fn hash_changes_with_the_spec_only() {
        assert_eq!(spec_hash(&agent("x").spec), spec_hash(&agent("x").spec));
        assert_ne!(spec_hash(&agent("x").spec), spec_hash(&agent("y").spec));
    }
}
