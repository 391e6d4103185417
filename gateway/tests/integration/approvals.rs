//! Who may confirm a tool call: only a key of the session's tenant, and with RBAC delegation on, only an identity
//! Kubernetes RBAC allows the approval verb on the Session.

use std::time::Duration;

use corral_api::events::EventBody;
use corral_gateway::{
    admin,
    approval::{RBAC_GROUPS_ANNOTATION, RBAC_USER_ANNOTATION},
    ratelimit::Limiter,
    state::Settings,
};
use k8s_openapi::api::{
    core::v1::Secret,
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use reqwest::StatusCode;
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

/// A second key in `t`'s namespace bound to `user` (and `groups`), usable once the gateway sees its annotations.
async fn key_for(gw: &Gateway, t: &Tenant, user: &str, groups: &str) -> Tenant {
    let (key, name) = admin::create_key(&gw.kube, &t.ns, None).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(gw.kube.clone(), &t.ns);
    let patch = json!({ "metadata": { "annotations": {
        RBAC_USER_ANNOTATION: user, RBAC_GROUPS_ANNOTATION: groups } } });
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    Tenant {
        ns: t.ns.clone(),
        key,
    }
}

#[tokio::test]
async fn with_rbac_delegation_only_an_allowed_identity_confirms() {
    let settings = Settings {
        approval_rbac_verb: Some("approve".into()),
        ..Settings::default()
    };
    let gw = Gateway::start_with_settings(Limiter::new(0, 0), settings).await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    let tool = waiting_tool_use(&gw, &t, &session).await;
    let path = format!("/v1/sessions/{session}/events");

    // Approvals are delegated to the group `approvers`.
    let roles: Api<Role> = Api::namespaced(gw.kube.clone(), &t.ns);
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
    let bindings: Api<RoleBinding> = Api::namespaced(gw.kube.clone(), &t.ns);
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
            kind: "Group".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            name: "approvers".into(),
            ..Subject::default()
        }]),
    };
    bindings.create(&PostParams::default(), &binding).await.unwrap();

    // A key bound to no identity may still talk to the session, but not confirm.
    let msg = gw
        .post(&path, &t, confirmation(&tool))
        .await
        .error(403, "permission_error");
    assert!(msg.contains(RBAC_USER_ANNOTATION), "{msg}");
    gw.post(
        &path,
        &t,
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
    )
    .await
    .ok();

    // Bob is in no approving group.
    let bob = key_for(&gw, &t, "bob", "developers").await;
    let mut msg = String::new();
    for _ in 0..100 {
        let reply = gw.post(&path, &bob, confirmation(&tool)).await;
        msg = reply.error(403, "permission_error");
        if msg.contains("may not approve") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(msg.contains("\"bob\" may not approve"), "{msg}");

    // Alice is an approver.
    let alice = key_for(&gw, &t, "alice", "developers,approvers").await;
    let mut confirmed = None;
    for _ in 0..100 {
        let reply = gw.post(&path, &alice, confirmation(&tool)).await;
        if reply.status == StatusCode::OK {
            confirmed = Some(reply.body);
            break;
        }
        reply.error(403, "permission_error");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let confirmed = confirmed.expect("alice may confirm");
    assert_eq!(confirmed["data"][0]["type"], "user.tool_confirmation");

    // Only the allowed confirmation reached the log.
    let all = gw.get(&path, &t).await.ok();
    let confirmations = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "user.tool_confirmation")
        .count();
    assert_eq!(confirmations, 1);
}
