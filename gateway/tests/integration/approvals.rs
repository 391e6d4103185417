//! Who may confirm a tool call: only a key of the session's tenant, and with RBAC delegation on, only an approver
//! whose own Kubernetes token the API server vouches for and whom RBAC allows the approval verb on the Session.

use std::time::Duration;

use corral_api::events::EventBody;
use corral_gateway::{
    admin,
    approval::{APPROVER_TOKEN_HEADER, Policy},
    ratelimit::Limiter,
    state::Settings,
};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Secret, ServiceAccount},
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Gateway, Tenant};

/// Writes what the harness writes when an `always_ask` tool waits: the tool use and a `requires_action` idle.
/// Returns the tool use's id.
async fn waiting_tool_use(gw: &Gateway, t: &Tenant, session: &str) -> String {
    let log = gw.store.session(&t.ns, session);
    let tool_use: EventBody = serde_json::from_value(json!({
        "type": "agent.tool_use", "name": "bash", "input": {"command": "rm -rf build"},
        "evaluated_permission": "ask"
    }))
    .unwrap();
    let stored = log.append_user([tool_use]).await.unwrap();
    let id = stored[0].event.id.to_string();
    let idle: EventBody = serde_json::from_value(json!({
        "type": "session.status_idle",
        "stop_reason": {"type": "requires_action", "event_ids": [id]}
    }))
    .unwrap();
    log.append_user([idle]).await.unwrap();
    id
}

fn confirmation(tool_use_id: &str) -> Value {
    json!({ "events": [{ "type": "user.tool_confirmation", "tool_use_id": tool_use_id, "result": "allow" }] })
}

async fn wakeup_count(gw: &Gateway, ns: &str) -> u64 {
    gw.store.wakeup_queue(ns).await.unwrap().depth
}

#[tokio::test]
async fn a_key_of_another_tenant_cannot_confirm_a_tool_call() {
    let gw = Gateway::start().await;
    let owner = gw.tenant().await;
    let other = gw.tenant().await;
    let (_, _, session) = gw.session(&owner).await;
    let tool = waiting_tool_use(&gw, &owner, &session).await;
    let path = format!("/v1/sessions/{session}/events");
    let before = gw.get(&path, &owner).await.ok()["data"].as_array().unwrap().len();

    let msg = gw
        .post(&path, &other, confirmation(&tool))
        .await
        .error(404, "not_found_error");
    assert!(msg.contains(&session), "{msg}");
    assert_eq!(
        gw.get(&path, &owner).await.ok()["data"].as_array().unwrap().len(),
        before,
        "nothing was appended"
    );
    assert_eq!(wakeup_count(&gw, &other.ns).await, 0);
    assert_eq!(wakeup_count(&gw, &owner.ns).await, 0);

    // The owner's key confirms.
    let echo = gw.post(&path, &owner, confirmation(&tool)).await.ok();
    assert_eq!(echo["data"][0]["type"], "user.tool_confirmation");
    assert_eq!(echo["data"][0]["tool_use_id"], tool.as_str());
    assert_eq!(wakeup_count(&gw, &owner.ns).await, 1, "the harness is woken");
}

/// A ServiceAccount `name` in `ns` and a token for it (audience `audience`, or the API server's own).
pub(crate) async fn service_account_token(
    gw: &Gateway,
    ns: &str,
    name: &str,
    audience: Option<&str>,
) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(gw.kube.clone(), ns);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    if accounts.get_opt(name).await.unwrap().is_none() {
        accounts.create(&PostParams::default(), &account).await.unwrap();
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]).unwrap_or_default(),
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .expect("a token")
        .token
}

/// A Role allowing `approve` on Sessions in `ns`, bound to ServiceAccount `account`.
async fn grant_approve(gw: &Gateway, ns: &str, account: &str) {
    let roles: Api<Role> = Api::namespaced(gw.kube.clone(), ns);
    let role = Role {
        metadata: ObjectMeta {
            name: Some("session-approver".into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["corral.dev".into()]),
            resources: Some(vec!["sessions".into()]),
            verbs: vec!["approve".into()],
            ..PolicyRule::default()
        }]),
    };
    roles.create(&PostParams::default(), &role).await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(gw.kube.clone(), ns);
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("session-approvers".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "session-approver".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(ns.into()),
            ..Subject::default()
        }]),
    };
    bindings.create(&PostParams::default(), &binding).await.unwrap();
}

/// `POST` of `body` with the tenant's key and, when given, an approver token.
async fn post_as(
    gw: &Gateway,
    path: &str,
    t: &Tenant,
    approver: Option<&str>,
    body: &Value,
) -> crate::harness::Reply {
    let mut req = gw
        .http
        .request(Method::POST, format!("{}{path}", gw.url))
        .bearer_auth(&t.key)
        .json(body);
    if let Some(token) = approver {
        req = req.header(APPROVER_TOKEN_HEADER, token);
    }
    Gateway::read(req.send().await.unwrap()).await
}

/// Posts until RBAC caught up with a new binding (the API server's authorizer cache), or the answer is `status`.
async fn post_until(
    gw: &Gateway,
    path: &str,
    t: &Tenant,
    approver: Option<&str>,
    body: &Value,
    status: StatusCode,
) -> crate::harness::Reply {
    let mut reply = post_as(gw, path, t, approver, body).await;
    for _ in 0..100 {
        if reply.status == status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        reply = post_as(gw, path, t, approver, body).await;
    }
    reply
}

fn rbac(audience: Option<&str>) -> Settings {
    Settings {
        approval: Some(Policy {
            verb: "approve".into(),
            audience: audience.map(str::to_owned),
        }),
        ..Settings::default()
    }
}

async fn confirmations(gw: &Gateway, path: &str, t: &Tenant) -> usize {
    gw.get(path, t).await.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "user.tool_confirmation")
        .count()
}

/// A gateway delegating approvals to RBAC (tokens for `audience`), a tenant whose session waits for a
/// confirmation, and ServiceAccount `alice` allowed to approve. Returns them, the events path and the confirmation.
async fn waiting_with_alice_as_approver(audience: Option<&str>) -> (Gateway, Tenant, String, Value) {
    let gw = Gateway::start_with_settings(Limiter::new(0, 0), rbac(audience)).await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    let tool = waiting_tool_use(&gw, &t, &session).await;
    grant_approve(&gw, &t.ns, "alice").await;
    (
        gw,
        t,
        format!("/v1/sessions/{session}/events"),
        confirmation(&tool),
    )
}

#[tokio::test]
async fn with_rbac_delegation_only_an_approver_the_api_server_vouches_for_confirms() {
    let (gw, t, path, confirm) = waiting_with_alice_as_approver(None).await;
    let alice = service_account_token(&gw, &t.ns, "alice", None).await;
    let bob = service_account_token(&gw, &t.ns, "bob", None).await;

    // Without the approver's token: 403 naming the header; every other event is unaffected.
    let msg = post_as(&gw, &path, &t, None, &confirm)
        .await
        .error(403, "permission_error");
    assert!(msg.contains(APPROVER_TOKEN_HEADER), "{msg}");
    gw.post(
        &path,
        &t,
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
    )
    .await
    .ok();

    // A token the API server does not vouch for.
    let msg = post_as(&gw, &path, &t, Some("not-a-token"), &confirm)
        .await
        .error(403, "permission_error");
    assert!(msg.contains("no valid Kubernetes token"), "{msg}");

    // Annotations on the key's Secret (the old identity binding) name no one any more, whoever may patch them.
    let (key, name) = admin::create_key(&gw.kube, &t.ns, None).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(gw.kube.clone(), &t.ns);
    let alice_user = format!("system:serviceaccount:{}:alice", t.ns);
    let patch = json!({ "metadata": { "annotations": {
        "corral.dev/rbac-user": alice_user, "corral.dev/rbac-groups": "system:masters" } } });
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let annotated = Tenant {
        ns: t.ns.clone(),
        key,
    };
    let reply = post_until(&gw, &path, &annotated, None, &confirm, StatusCode::FORBIDDEN).await;
    let msg = reply.error(403, "permission_error");
    assert!(msg.contains(APPROVER_TOKEN_HEADER), "{msg}");
    let msg = post_as(&gw, &path, &annotated, Some(&bob), &confirm)
        .await
        .error(403, "permission_error");
    assert!(
        msg.contains(&format!("\"system:serviceaccount:{}:bob\" may not approve", t.ns)),
        "{msg}"
    );
    assert_eq!(confirmations(&gw, &path, &t).await, 0, "nothing was appended");

    // Alice's own token, from a key with no identity of its own: RBAC allows her.
    let reply = post_until(&gw, &path, &t, Some(&alice), &confirm, StatusCode::OK).await;
    let confirmed = reply.ok();
    assert_eq!(confirmed["data"][0]["type"], "user.tool_confirmation");
    assert_eq!(confirmations(&gw, &path, &t).await, 1);
    assert!(wakeup_count(&gw, &t.ns).await >= 1, "the harness is woken");
}

#[tokio::test]
async fn with_an_approval_audience_only_tokens_issued_for_it_count() {
    let (gw, t, path, confirm) = waiting_with_alice_as_approver(Some("corral-approvals")).await;

    // Alice's API-server token is not meant for approvals.
    let for_the_api_server = service_account_token(&gw, &t.ns, "alice", None).await;
    let msg = post_as(&gw, &path, &t, Some(&for_the_api_server), &confirm)
        .await
        .error(403, "permission_error");
    assert!(msg.contains("corral-approvals"), "{msg}");

    let for_approvals = service_account_token(&gw, &t.ns, "alice", Some("corral-approvals")).await;
    post_until(&gw, &path, &t, Some(&for_approvals), &confirm, StatusCode::OK)
        .await
        .ok();
    assert_eq!(confirmations(&gw, &path, &t).await, 1);
}
