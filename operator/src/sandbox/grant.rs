//! The credential grant of a sandbox pod (pure): the Secret the operator writes into the egress proxy's grants
//! namespace, handing the proxy the `environment_variable` credentials of the session the pod is bound to (see
//! `corral_api::egress::GRANT_OBJECT`), and which grants have outlived their pod.

use std::collections::{BTreeMap, BTreeSet};

use corral_api::{
    Session,
    egress::{GRANT_CREDENTIALS_KEY, GRANT_OBJECT, grant_name, is_injected, session_credential},
    labels, vault,
};
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};

/// The label selector of every grant.
pub fn grants_selector() -> String {
    format!("{}={GRANT_OBJECT}", vault::OBJECT)
}

/// The label selector of the credential Secrets of the vaults `session` references; `None` when it references
/// none (it then needs no grant: a session's vaults never change).
pub fn credentials_selector(session: &Session) -> Option<String> {
    let vaults: BTreeSet<&str> = session.spec.vault_refs.iter().map(|r| r.name.as_str()).collect();
    (!vaults.is_empty()).then(|| {
        let list = vaults.into_iter().collect::<Vec<_>>().join(",");
        format!(
            "{}={},{} in ({list})",
            vault::OBJECT,
            vault::OBJECT_CREDENTIAL,
            vault::VAULT
        )
    })
}

/// The grant of pod `namespace/pod`, bound to `session`, in namespace `grants`: every credential among `secrets`
/// that the session's vaults hold, is not archived and is injected by the proxy, by id.
pub fn build_grant(
    grants: &str,
    namespace: &str,
    pod: &str,
    session: &Session,
    secrets: &[Secret],
) -> Secret {
    let credentials: BTreeMap<&str, serde_json::Value> = secrets
        .iter()
        .filter_map(|s| session_credential(session, s))
        .filter(|(_, auth)| is_injected(auth))
        .filter_map(|(id, auth)| Some((id, serde_json::from_slice(auth).ok()?)))
        .collect();
    // A map of strings to JSON values always serialises.
    let data = serde_json::to_vec(&credentials).unwrap_or_default();
    let session_name = session.metadata.name.clone().unwrap_or_default();
    Secret {
        metadata: ObjectMeta {
            name: Some(grant_name(namespace, pod)),
            namespace: Some(grants.to_owned()),
            labels: Some(BTreeMap::from([
                (labels::MANAGED_BY.to_owned(), labels::APP_NAME.to_owned()),
                (vault::OBJECT.to_owned(), GRANT_OBJECT.to_owned()),
                (labels::SESSION.to_owned(), session_name),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            GRANT_CREDENTIALS_KEY.to_owned(),
            ByteString(data),
        )])),
        ..Secret::default()
    }
}

/// The pod a grant is for, from its name: `(namespace, pod)`.
pub fn granted_pod(grant_name: &str) -> Option<(&str, &str)> {
    grant_name.split_once('.')
}

/// The names of the grants to delete: those whose pod is not among `pods` (`(namespace, pod)`), created at least
/// `grace` before `now` (a grant may be written a moment before its pod is seen), and in `watched` when the
/// operator watches one namespace only.
pub fn orphaned<'a>(
    grants: &'a [ObjectMeta],
    pods: &BTreeSet<(String, String)>,
    watched: Option<&str>,
    now: Timestamp,
    grace: std::time::Duration,
) -> Vec<&'a str> {
    grants
        .iter()
        .filter(|g| {
            g.creation_timestamp
                .as_ref()
                .is_none_or(|Time(t)| now.duration_since(*t).unsigned_abs() >= grace && *t <= now)
        })
        .filter_map(|g| g.name.as_deref())
        .filter(|name| {
            let Some((ns, pod)) = granted_pod(name) else {
                return false;
            };
            watched.is_none_or(|w| w == ns) && !pods.contains(&(ns.to_owned(), pod.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use corral_api::SessionSpec;

    use super::*;

    fn session(vaults: &[&str]) -> Session {
        let refs: Vec<_> = vaults.iter().map(|v| serde_json::json!({"name": v})).collect();
        let spec: SessionSpec = serde_json::from_value(serde_json::json!({
            "agent": {"name": "a"}, "environmentRef": {"name": "py"}, "vaultRefs": refs
        }))
        .unwrap();
        let mut s = Session::new("s1", spec);
        s.metadata.namespace = Some("team".into());
        s
    }

    fn credential(name: &str, vault_name: &str, auth: serde_json::Value) -> Secret {
        let mut s = Secret::default();
        s.metadata.namespace = Some("team".into());
        s.metadata.name = Some(name.into());
        s.metadata.labels = Some(BTreeMap::from([
            (vault::OBJECT.into(), vault::OBJECT_CREDENTIAL.into()),
            (vault::VAULT.into(), vault_name.into()),
        ]));
        s.data = Some(BTreeMap::from([(
            vault::AUTH_KEY.into(),
            ByteString(serde_json::to_vec(&auth).unwrap()),
        )]));
        s
    }

    fn env_var(value: &str) -> serde_json::Value {
        serde_json::json!({"type": "environment_variable", "secret_name": "TOKEN", "secret_value": value})
    }

    fn granted(grant: &Secret) -> serde_json::Value {
        let data = &grant.data.as_ref().unwrap()[GRANT_CREDENTIALS_KEY].0;
        serde_json::from_slice(data).unwrap()
    }

    #[test]
    fn a_grant_holds_the_injected_credentials_of_the_sessions_vaults() {
        let mut archived = credential("vcrd-old", "v1", env_var("old"));
        archived.metadata.annotations = Some(BTreeMap::from([(
            labels::ARCHIVED_AT.into(),
            "2026-01-01T00:00:00Z".into(),
        )]));
        let secrets = [
            credential("vcrd-1", "v1", env_var("s3cret")),
            credential("vcrd-2", "v2", env_var("other vault")),
            credential(
                "vcrd-3",
                "v1",
                serde_json::json!({"type": "mcp_oauth", "access_token": "t"}),
            ),
            archived,
        ];
        let grant = build_grant("corral-grants", "team", "sandbox-s1", &session(&["v1"]), &secrets);

        assert_eq!(grant.metadata.name.as_deref(), Some("team.sandbox-s1"));
        assert_eq!(grant.metadata.namespace.as_deref(), Some("corral-grants"));
        assert_eq!(grant.type_.as_deref(), Some("Opaque"));
        let l = grant.metadata.labels.as_ref().unwrap();
        assert_eq!(l["app.kubernetes.io/managed-by"], "corral");
        assert_eq!(l["corral.dev/object"], "egress-grant");
        assert_eq!(l["corral.dev/session"], "s1");
        assert_eq!(
            granted(&grant),
            serde_json::json!({"vcrd-1": env_var("s3cret")}),
            "only the live environment_variable credential of vault v1"
        );
        assert!(
            grant.metadata.owner_references.is_none(),
            "no cross-namespace owner"
        );
    }

    #[test]
    fn a_session_without_vaults_needs_no_grant() {
        assert_eq!(credentials_selector(&session(&[])), None);
        assert_eq!(
            credentials_selector(&session(&["v2", "v1"])).as_deref(),
            Some("corral.dev/object=vault-credential,corral.dev/vault in (v1,v2)")
        );
        let grant = build_grant("g", "team", "p", &session(&["v1"]), &[]);
        assert_eq!(granted(&grant), serde_json::json!({}));
    }

    #[test]
    fn grants_outliving_their_pod_are_orphaned_after_the_grace_period() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let grant = |name: &str, created: &str| ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: Some(Time(created.parse().unwrap())),
            ..ObjectMeta::default()
        };
        let grants = [
            grant("team.sandbox-s1", "2026-01-01T00:00:00Z"),
            grant("team.sandbox-gone", "2026-01-01T00:00:00Z"),
            grant("team.sandbox-new", "2026-01-01T00:09:50Z"),
            grant("other.sandbox-gone", "2026-01-01T00:00:00Z"),
            grant("nodot", "2026-01-01T00:00:00Z"),
        ];
        let pods = BTreeSet::from([("team".to_owned(), "sandbox-s1".to_owned())]);
        let grace = Duration::from_secs(60);
        assert_eq!(
            orphaned(&grants, &pods, None, now, grace),
            ["team.sandbox-gone", "other.sandbox-gone"]
        );
        assert_eq!(
            orphaned(&grants, &pods, Some("team"), now, grace),
            ["team.sandbox-gone"],
            "another namespace's grants are another operator's"
        );
    }
}
