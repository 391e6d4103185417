//! Who may confirm a tool call (`user.tool_confirmation`).
//!
//! Always: a key of the session's tenant (any other key does not see the session and gets `not_found_error`).
//! Optionally (`--approval-rbac`): the Kubernetes identity bound to the key must also be allowed a verb (`approve`
//! by default) on the Session in Kubernetes RBAC, checked with a SubjectAccessReview. The identity is a user and
//! groups named in annotations of the key's Secret, so approvals can be delegated to a group with an ordinary
//! Role and RoleBinding.

use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    core::v1::Secret,
};
use kube::{Api, api::PostParams};

use crate::error::{ApiError, ApiResult};

/// Annotation of a key Secret naming the Kubernetes user the key acts as for approvals.
pub const RBAC_USER_ANNOTATION: &str = "corral.dev/rbac-user";
/// Annotation of a key Secret listing the Kubernetes groups of that user, comma-separated.
pub const RBAC_GROUPS_ANNOTATION: &str = "corral.dev/rbac-groups";
/// The verb checked when none is configured: a custom verb, so no built-in role grants it by accident.
pub const DEFAULT_VERB: &str = "approve";

/// The Kubernetes identity bound to an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// Its groups.
    pub groups: Vec<String>,
}

/// The identity a key Secret's annotations bind to the key, if any (a user is required; groups are optional).
pub fn identity(secret: &Secret) -> Option<Identity> {
    let annotations = secret.metadata.annotations.as_ref()?;
    let user = annotations.get(RBAC_USER_ANNOTATION)?.trim();
    if user.is_empty() {
        return None;
    }
    let groups = annotations
        .get(RBAC_GROUPS_ANNOTATION)
        .map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some(Identity {
        user: user.to_owned(),
        groups,
    })
}

/// The review asking whether `who` may `verb` Session `session` in `namespace`.
pub fn review(who: &Identity, namespace: &str, session: &str, verb: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(who.user.clone()),
            groups: (!who.groups.is_empty()).then(|| who.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(corral_api::GROUP.to_owned()),
                resource: Some("sessions".to_owned()),
                verb: Some(verb.to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(session.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Checks that `who` may `verb` the Session: `permission_error` (403) when the key has no identity or RBAC says no.
pub async fn authorize(
    kube: &kube::Client,
    who: Option<&Identity>,
    namespace: &str,
    session: &str,
    verb: &str,
) -> ApiResult<()> {
    let Some(who) = who else {
        return Err(ApiError::forbidden(format!(
            "confirming tool calls requires a Kubernetes identity bound to the API key (annotation \
             {RBAC_USER_ANNOTATION} on its Secret); this key has none"
        )));
    };
    let api: Api<SubjectAccessReview> = Api::all(kube.clone());
    let answer = api
        .create(&PostParams::default(), &review(who, namespace, session, verb))
        .await
        .map_err(ApiError::unavailable)?;
    let allowed = answer
        .status
        .as_ref()
        .is_some_and(|s| s.allowed && s.denied != Some(true));
    if allowed {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{:?} may not {verb} sessions.{} {session:?} in namespace {namespace:?} (Kubernetes RBAC), so it may not \
         confirm tool calls of this session",
        who.user,
        corral_api::GROUP
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn secret(annotations: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    #[test]
    fn the_identity_comes_from_the_key_secret_annotations() {
        assert_eq!(identity(&Secret::default()), None);
        assert_eq!(identity(&secret(&[(RBAC_USER_ANNOTATION, " ")])), None);
        assert_eq!(identity(&secret(&[(RBAC_GROUPS_ANNOTATION, "ops")])), None);
        assert_eq!(
            identity(&secret(&[
                (RBAC_USER_ANNOTATION, "alice"),
                (RBAC_GROUPS_ANNOTATION, "ops, ,approvers")
            ])),
            Some(Identity {
                user: "alice".into(),
                groups: vec!["ops".into(), "approvers".into()]
            })
        );
        let who = identity(&secret(&[(RBAC_USER_ANNOTATION, "bob")])).unwrap();
        let review = review(&who, "team-a", "sesn-1", "approve");
        let attrs = review.spec.resource_attributes.unwrap();
        assert_eq!(review.spec.user.as_deref(), Some("bob"));
        assert_eq!(review.spec.groups, None);
        assert_eq!(attrs.group.as_deref(), Some("corral.dev"));
        assert_eq!(attrs.resource.as_deref(), Some("sessions"));
        assert_eq!(attrs.verb.as_deref(), Some("approve"));
        assert_eq!(attrs.namespace.as_deref(), Some("team-a"));
        assert_eq!(attrs.name.as_deref(), Some("sesn-1"));
    }
}
