//! Who may confirm a tool call (`user.tool_confirmation`).
//!
//! Always: a key of the session's tenant (any other key does not see the session and gets `not_found_error`).
//! Optionally (`--approval-rbac`): the approver proves who they are with their own Kubernetes bearer token in the
//! [`APPROVER_TOKEN_HEADER`] header. The API server asserts the identity (a TokenReview), and that identity must be
//! allowed a verb (`approve` by default) on the Session in Kubernetes RBAC (a SubjectAccessReview), so approvals can
//! be delegated to a group with an ordinary Role and RoleBinding. Nothing a tenant can write (a Secret's
//! annotations, a request field) names the approver.

use axum::http::HeaderMap;
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec, UserInfo},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, api::PostParams};

use crate::error::{ApiError, ApiResult};

/// The verb checked when none is configured: a custom verb, so no built-in role grants it by accident.
pub const DEFAULT_VERB: &str = "approve";

/// The request header carrying the approver's own Kubernetes bearer token.
pub const APPROVER_TOKEN_HEADER: &str = "x-corral-approver-token";

/// The longest approver token accepted (service account and OIDC tokens are a few KiB at most).
const MAX_TOKEN: usize = 16 << 10;

/// How approvals are checked when delegated to Kubernetes RBAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The verb the approver needs on `sessions.corral.dev`.
    pub verb: String,
    /// The audience an approver token must be issued for; `None` accepts the API server's own audiences.
    pub audience: Option<String>,
}

/// A Kubernetes identity as the API server asserted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Its uid, if the authenticator gave one.
    pub uid: Option<String>,
    /// Further attributes the authenticator gave (scopes, the pod a service account token was bound to).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl From<UserInfo> for Identity {
    fn from(user: UserInfo) -> Self {
        Self {
            user: user.username.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            uid: user.uid.filter(|u| !u.is_empty()),
            extra: user.extra.unwrap_or_default(),
        }
    }
}

/// The approver token a request carries: `403` when it is missing or not a plausible token.
pub fn presented_token(headers: &HeaderMap) -> ApiResult<&str> {
    let missing = || {
        ApiError::forbidden(format!(
            "confirming tool calls requires the approver's own Kubernetes token in the {APPROVER_TOKEN_HEADER} \
             header (for example from `kubectl create token`); approvals are checked with Kubernetes RBAC"
        ))
    };
    let token = headers
        .get(APPROVER_TOKEN_HEADER)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?
        .trim();
    let token = match token.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => token,
    };
    if token.is_empty()
        || token.eq_ignore_ascii_case("bearer")
        || token.len() > MAX_TOKEN
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(missing());
    }
    Ok(token)
}

/// The review asking the API server who `token` belongs to.
pub fn token_review(token: &str, audience: Option<&str>) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: audience.map(|a| vec![a.to_owned()]),
        },
        ..TokenReview::default()
    }
}

/// The review asking whether `who` may `verb` Session `session` in `namespace`.
pub fn access_review(who: &Identity, namespace: &str, session: &str, verb: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(who.user.clone()),
            groups: (!who.groups.is_empty()).then(|| who.groups.clone()),
            uid: who.uid.clone(),
            extra: (!who.extra.is_empty()).then(|| who.extra.clone()),
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

/// The identity the API server asserts for `token`: `403` when it authenticates no one (expired, revoked, forged,
/// or issued for another audience).
pub async fn authenticate(kube: &kube::Client, token: &str, audience: Option<&str>) -> ApiResult<Identity> {
    let api: Api<TokenReview> = Api::all(kube.clone());
    let answer = api
        .create(&PostParams::default(), &token_review(token, audience))
        .await
        .map_err(ApiError::unavailable)?;
    let status = answer.status.unwrap_or_default();
    // An authenticator that ignores audiences answers without them: a token for another audience is refused.
    let audience_ok = audience.is_none_or(|a| status.audiences.iter().flatten().any(|s| s == a));
    match status.user {
        Some(user)
            if status.authenticated == Some(true)
                && audience_ok
                && user.username.as_deref().is_some_and(|u| !u.is_empty()) =>
        {
            Ok(user.into())
        }
        _ => {
            tracing::debug!(error = ?status.error, "approver token refused by the TokenReview");
            Err(ApiError::forbidden(format!(
                "the {APPROVER_TOKEN_HEADER} header holds no valid Kubernetes token{}",
                audience
                    .map(|a| format!(" for the audience {a:?}"))
                    .unwrap_or_default()
            )))
        }
    }
}

/// Checks that the approver whose token the request carries may confirm tool calls of the Session: `403
/// permission_error` when the token is missing or invalid, or RBAC says no.
pub async fn authorize(
    kube: &kube::Client,
    policy: &Policy,
    headers: &HeaderMap,
    namespace: &str,
    session: &str,
) -> ApiResult<Identity> {
    let token = presented_token(headers)?;
    let who = authenticate(kube, token, policy.audience.as_deref()).await?;
    let api: Api<SubjectAccessReview> = Api::all(kube.clone());
    let answer = api
        .create(
            &PostParams::default(),
            &access_review(&who, namespace, session, &policy.verb),
        )
        .await
        .map_err(ApiError::unavailable)?;
    let allowed = answer
        .status
        .as_ref()
        .is_some_and(|s| s.allowed && s.denied != Some(true));
    if allowed {
        tracing::info!(approver = %who.user, "tool confirmation authorized by Kubernetes RBAC");
        return Ok(who);
    }
    Err(ApiError::forbidden(format!(
        "{:?} may not {} sessions.{} {session:?} in namespace {namespace:?} (Kubernetes RBAC), so it may not \
         confirm tool calls of this session",
        who.user,
        policy.verb,
        corral_api::GROUP
    )))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(APPROVER_TOKEN_HEADER, HeaderValue::from_str(token).unwrap());
        h
    }

    #[test]
    fn the_token_comes_from_its_header_only() {
        let err = presented_token(&HeaderMap::new()).unwrap_err();
        assert_eq!(err.status, 403);
        assert!(err.message.contains(APPROVER_TOKEN_HEADER), "{}", err.message);
        assert_eq!(presented_token(&headers("  ")).unwrap_err().status, 403);
        assert_eq!(presented_token(&headers("Bearer ")).unwrap_err().status, 403);
        assert_eq!(presented_token(&headers("a b")).unwrap_err().status, 403);
        assert_eq!(
            presented_token(&headers(&"x".repeat(MAX_TOKEN + 1)))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(presented_token(&headers("eyJ.a.b")).unwrap(), "eyJ.a.b");
        assert_eq!(presented_token(&headers("Bearer eyJ.a.b")).unwrap(), "eyJ.a.b");
    }

    #[test]
    fn the_reviews_ask_about_the_asserted_identity_and_the_session() {
        let review = token_review("tok", Some("corral-approvals"));
        assert_eq!(review.spec.token.as_deref(), Some("tok"));
        assert_eq!(review.spec.audiences, Some(vec!["corral-approvals".to_owned()]));
        assert_eq!(token_review("tok", None).spec.audiences, None);

        let who = Identity::from(UserInfo {
            username: Some("system:serviceaccount:team-a:bob".into()),
            groups: Some(vec!["system:serviceaccounts".into()]),
            uid: Some("u-1".into()),
            extra: None,
        });
        let review = access_review(&who, "team-a", "sesn-1", "approve");
        let attrs = review.spec.resource_attributes.unwrap();
        assert_eq!(
            review.spec.user.as_deref(),
            Some("system:serviceaccount:team-a:bob")
        );
        assert_eq!(
            review.spec.groups,
            Some(vec!["system:serviceaccounts".to_owned()])
        );
        assert_eq!(review.spec.uid.as_deref(), Some("u-1"));
        assert_eq!(review.spec.extra, None);
        assert_eq!(attrs.group.as_deref(), Some("corral.dev"));
        assert_eq!(attrs.resource.as_deref(), Some("sessions"));
        assert_eq!(attrs.verb.as_deref(), Some("approve"));
        assert_eq!(attrs.namespace.as_deref(), Some("team-a"));
        assert_eq!(attrs.name.as_deref(), Some("sesn-1"));
    }
}
