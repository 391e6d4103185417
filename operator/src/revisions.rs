//! Keeping an Agent's versions: reads its ControllerRevisions and creates the next one when the spec changed.

use corral_api::{
    Agent, labels,
    revision::{VersionDecision, build_revision, decide_version, parse_revision, revision_name},
    validation::spec_hash,
};
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};

use crate::error::{Error, Result};

/// Makes sure the Agent's current spec is stored as a version and returns that version number.
pub async fn ensure_version(client: &Client, agent: &Agent) -> Result<i64> {
    let ns = agent.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let selector = format!("{}={}", labels::AGENT, agent.name_any());
    let stored: Vec<(i64, String)> = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .filter(|r| owned_by(r, agent))
        .filter_map(parse_revision)
        .map(|v| (v.version, v.hash))
        .collect();
    match decide_version(&stored, &spec_hash(&agent.spec)) {
        VersionDecision::Current(v) => Ok(v),
        VersionDecision::Create(v) => {
            let revision = build_revision(agent, v)?;
            let name = revision_name(&agent.name_any(), v);
            api.patch(
                &name,
                &PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force(),
                &Patch::Apply(&revision),
            )
            .await?;
            tracing::info!(agent = %agent.name_any(), version = v, "stored new agent version");
            Ok(v)
        }
    }
}

/// Whether a stored version of `version` exists for `agent`.
pub async fn version_exists(client: &Client, namespace: &str, agent: &Agent, version: i64) -> Result<bool> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(&revision_name(&agent.name_any(), version))
        .await?
        .is_some_and(|r| owned_by(&r, agent) && parse_revision(&r).is_some()))
}

/// Revisions left behind by an earlier Agent of the same name belong to a different uid and are ignored.
fn owned_by(revision: &ControllerRevision, agent: &Agent) -> bool {
    let uid = agent.uid();
    revision
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref())
}
