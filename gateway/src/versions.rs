//! Agent versions, kept as ControllerRevisions `<agent>-v<N>` (the same objects the operator keeps), so that an
//! API update answers with its new version at once.

use std::collections::BTreeMap;

use corral_api::{
    Agent, AgentSpec, labels,
    revision::{
        AgentVersion, VersionDecision, build_revision, decide_version, parse_revision, revision_name,
    },
    validation::spec_hash,
};
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};

use crate::{error::ApiError, mapping::common::created_at};

/// One stored version and when it was stored.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// The version.
    pub version: AgentVersion,
    /// When its revision was created.
    pub created: jiff::Timestamp,
}

/// Every agent's stored versions in `namespace`, by agent name (only revisions owned by the live agent's uid count
/// when `agents` gives the uids).
pub async fn all_versions(
    client: &Client,
    namespace: &str,
    selector: Option<&str>,
) -> Result<BTreeMap<String, Vec<(String, StoredVersion)>>, ApiError> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    let selector = match selector {
        Some(agent) => format!("{}={agent}", labels::AGENT),
        None => labels::AGENT.to_owned(),
    };
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    let mut out: BTreeMap<String, Vec<(String, StoredVersion)>> = BTreeMap::new();
    for revision in &list.items {
        let Some(agent) = revision.labels().get(labels::AGENT).cloned() else {
            continue;
        };
        let Some(version) = parse_revision(revision) else {
            continue;
        };
        let owner = revision
            .owner_references()
            .iter()
            .find(|o| o.kind == "Agent")
            .map(|o| o.uid.clone())
            .unwrap_or_default();
        out.entry(agent).or_default().push((
            owner,
            StoredVersion {
                version,
                created: created_at(&revision.metadata),
            },
        ));
    }
    Ok(out)
}

/// The versions of `agent` among `all` (revisions of an earlier agent of the same name are ignored), oldest first.
pub fn versions_of(
    agent: &Agent,
    all: &BTreeMap<String, Vec<(String, StoredVersion)>>,
) -> Vec<StoredVersion> {
    let uid = agent.uid().unwrap_or_default();
    let mut out: Vec<StoredVersion> = all
        .get(&agent.name_any())
        .into_iter()
        .flatten()
        .filter(|(owner, _)| *owner == uid)
        .map(|(_, v)| v.clone())
        .collect();
    out.sort_by_key(|v| v.version.version);
    out
}

/// The version the agent's current spec has (or will have once stored): the latest stored version when it holds the
/// current spec, else the next number.
pub fn current_version(agent: &Agent, stored: &[StoredVersion]) -> i64 {
    let hashes: Vec<(i64, String)> = stored
        .iter()
        .map(|v| (v.version.version, v.version.hash.clone()))
        .collect();
    match decide_version(&hashes, &spec_hash(&agent.spec)) {
        VersionDecision::Current(v) | VersionDecision::Create(v) => v,
    }
}

/// The stored versions of one agent.
pub async fn stored_versions(client: &Client, agent: &Agent) -> Result<Vec<StoredVersion>, ApiError> {
    let namespace = agent.namespace().unwrap_or_default();
    let all = all_versions(client, &namespace, Some(&agent.name_any())).await?;
    Ok(versions_of(agent, &all))
}

/// Makes sure the agent's current spec is stored as a version and returns it. A revision created concurrently (by
/// the operator or another replica) under the same name is accepted when it holds the same spec.
pub async fn ensure_version(client: &Client, agent: &Agent) -> Result<i64, ApiError> {
    let namespace = agent.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let hash = spec_hash(&agent.spec);
    for _ in 0..5 {
        let stored = stored_versions(client, agent).await?;
        let hashes: Vec<(i64, String)> = stored
            .iter()
            .map(|v| (v.version.version, v.version.hash.clone()))
            .collect();
        let version = match decide_version(&hashes, &hash) {
            VersionDecision::Current(v) => return Ok(v),
            VersionDecision::Create(v) => v,
        };
        let revision = build_revision(agent, version).map_err(ApiError::internal)?;
        let params = PostParams {
            field_manager: Some(labels::GATEWAY_FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match api.create(&params, &revision).await {
            Ok(_) => return Ok(version),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = api.get_opt(&revision_name(&agent.name_any(), version)).await?;
                if existing
                    .as_ref()
                    .and_then(parse_revision)
                    .is_some_and(|v| v.hash == hash)
                {
                    return Ok(version);
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::conflict(
        "the agent's versions changed concurrently; retry",
    ))
}

/// The spec of `agent` at `version`: the stored version's, or the current spec when `version` is the current one.
pub fn spec_at(
    agent: &Agent,
    stored: &[StoredVersion],
    version: i64,
) -> Option<(AgentSpec, Option<jiff::Timestamp>)> {
    if let Some(v) = stored.iter().find(|v| v.version.version == version) {
        return Some((v.version.spec.clone(), Some(v.created)));
    }
    (current_version(agent, stored) == version).then(|| (agent.spec.clone(), None))
}
