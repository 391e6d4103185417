//! Session budgets through the API: stored in the Session's spec (checked by the CRD's schema), shown in the
//! Session object, raised, refused when lowered to what is spent or added afterwards, removed; the harness's cost
//! (`status.listCost`) shown as `usage.list_cost`.

use corral_api::Session;
use corral_api::events::EventBody;
use corral_session::Order;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::harness::Gateway;

#[tokio::test]
async fn a_session_budget_is_stored_shown_raised_and_removed() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let agent = gw
        .post(
            "/v1/agents",
            &t,
            json!({ "name": "a", "model": "claude-sonnet-4-5" }),
        )
        .await
        .ok();
    let env = gw.post("/v1/environments", &t, json!({ "name": "e" })).await.ok();
    let budget = json!({ "type": "limit", "max_list_cost": { "amount": "2500", "currency": "USD" } });
    let session = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent["id"], "environment_id": env["id"], "budget": budget }),
        )
        .await
        .ok();
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["budget"], budget);

    // kubectl sees it in the spec.
    let sessions: Api<Session> = Api::namespaced(gw.kube.clone(), &t.ns);
    let obj = sessions.get(&id).await.unwrap();
    let stored = obj.spec.budget.clone().unwrap();
    assert_eq!(stored.max_cost.unwrap().amount, "2500");

    // The harness's cost estimate in the status is the API's usage.list_cost.
    let status = json!({ "apiVersion": "corral.dev/v1alpha1", "kind": "Session",
        "status": { "listCost": { "amount": "1200.5", "currency": "USD" }, "activeSeconds": 2.345 } });
    sessions
        .patch_status(&id, &PatchParams::apply("test").force(), &Patch::Apply(&status))
        .await
        .unwrap();
    let got = gw.get(&format!("/v1/sessions/{id}"), &t).await.ok();
    assert_eq!(
        got["usage"]["list_cost"],
        json!({ "amount": "1200.5", "currency": "USD" })
    );
    assert_eq!(got["stats"]["active_seconds"], 2.345);

    // Lowering the budget to what is spent is refused; raising it works and is announced.
    let low = json!({ "budget": { "type": "limit", "max_list_cost": { "amount": "1200" } } });
    let reply = gw.post(&format!("/v1/sessions/{id}"), &t, low).await;
    reply.error(400, "invalid_request_error");
    assert_eq!(reply.body["error"]["details"]["error_code"], "budget_not_raised");
    let high = json!({ "type": "limit", "max_list_cost": { "amount": "5000", "currency": "USD" } });
    let raised = gw
        .post(&format!("/v1/sessions/{id}"), &t, json!({ "budget": high }))
        .await
        .ok();
    assert_eq!(raised["budget"], high);
    let log = gw.store.session(&t.ns, &id);
    let page = log.range(None, 10, Order::Asc).await.unwrap();
    let updated = page
        .events
        .iter()
        .find_map(|e| match &e.event.body {
            EventBody::SessionUpdated(u) => Some(u.clone()),
            _ => None,
        })
        .expect("a session.updated event");
    assert_eq!(updated.budget, Some(Some(high)));

    // Removing it.
    let removed = gw
        .post(&format!("/v1/sessions/{id}"), &t, json!({ "budget": null }))
        .await
        .ok();
    assert_eq!(removed["budget"], json!(null));
    assert_eq!(sessions.get(&id).await.unwrap().spec.budget, None);

    // A session created without a budget cannot get one; a bad budget names its field.
    let (_, _, plain) = gw.session(&t).await;
    let reply = gw
        .post(
            &format!("/v1/sessions/{plain}"),
            &t,
            json!({ "budget": { "type": "limit", "max_tokens": 10 } }),
        )
        .await;
    reply.error(400, "invalid_request_error");
    assert_eq!(reply.body["error"]["details"]["error_code"], "budget_create_only");
    let reply = gw
        .post(
            "/v1/sessions",
            &t,
            json!({ "agent": agent["id"], "environment_id": env["id"],
                    "budget": { "type": "limit", "max_list_cost": { "amount": "-5" } } }),
        )
        .await;
    let message = reply.error(400, "invalid_request_error");
    assert!(message.starts_with("budget.max_list_cost.amount:"), "{message}");
}

#[tokio::test]
async fn the_crd_schema_refuses_a_bad_budget_written_with_kubectl() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let sessions: Api<Session> = Api::namespaced(gw.kube.clone(), &t.ns);
    for (budget, message) in [
        (json!({}), "a budget needs maxCost or maxTokens"),
        (json!({ "maxTokens": 0 }), "maxTokens must be at least 1"),
        (
            json!({ "maxCost": { "amount": "1e5" } }),
            "amount must be a non-negative decimal number of cents",
        ),
        (
            json!({ "maxCost": { "amount": "5", "currency": "EUR" } }),
            "currency must be USD",
        ),
    ] {
        let obj = json!({ "apiVersion": "corral.dev/v1alpha1", "kind": "Session",
            "metadata": { "name": "bad" },
            "spec": { "agent": { "name": "a" }, "environmentRef": { "name": "e" }, "budget": budget } });
        let obj: Session = serde_json::from_value(obj).unwrap();
        let err = sessions.create(&Default::default(), &obj).await.unwrap_err();
        assert!(err.to_string().contains(message), "{budget}: {err}");
    }
}
