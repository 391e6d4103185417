//! The session's working directory: an emptyDir thrown away with the pod, or a PersistentVolumeClaim per session
//! that outlives idle reaping.

use std::collections::BTreeMap;

use corral_api::{Environment, environment::WorkspaceType, labels};
use k8s_openapi::{
    api::core::v1::{
        PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Volume,
        VolumeResourceRequirements,
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::OwnerReference},
};

use super::naming::{meta, workspace_claim_name};

/// The name of the workspace volume.
pub const VOLUME: &str = "workspace";

/// The persistent workspace claim of a session, owned by the Session (it survives the pod, not the session).
pub fn build_workspace_claim(
    session: &str,
    namespace: &str,
    env: &Environment,
    owner: &OwnerReference,
) -> Option<PersistentVolumeClaim> {
    let ws = &env.spec.sandbox.workspace;
    if ws.kind != WorkspaceType::Persistent {
        return None;
    }
    let size = ws.size.clone().unwrap_or_else(|| "1Gi".into());
    let l = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "workspace".to_owned()),
        (labels::SESSION.to_owned(), session.to_owned()),
    ]);
    Some(PersistentVolumeClaim {
        metadata: meta(workspace_claim_name(session), namespace, l, owner),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: ws.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

/// The workspace volume of the session's pod: its claim when persistent, else `ephemeral`.
pub fn session_volume(session: &str, env: &Environment, ephemeral: Volume) -> Volume {
    match env.spec.sandbox.workspace.kind {
        WorkspaceType::Persistent => Volume {
            name: VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: workspace_claim_name(session),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        WorkspaceType::Ephemeral => ephemeral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::test_support::*;

    #[test]
    fn persistent_workspace_uses_the_sessions_claim() {
        let e =
            env(serde_json::json!({ "sandbox": { "workspace": { "type": "persistent", "size": "2Gi" } } }));
        let claim = build_workspace_claim("s1", "team", &e, &owner("Session")).unwrap();
        assert_eq!(claim.metadata.name.as_deref(), Some("workspace-s1"));
        let size = &claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"];
        assert_eq!(size.0, "2Gi");
        let pod = session_pod(&e);
        let volumes = pod.spec.unwrap().volumes.unwrap();
        let ws = volumes.iter().find(|v| v.name == "workspace").unwrap();
        assert_eq!(
            ws.persistent_volume_claim.as_ref().unwrap().claim_name,
            "workspace-s1"
        );
        assert!(
            build_workspace_claim("s1", "team", &env(serde_json::json!({})), &owner("Session")).is_none()
        );
    }
}
