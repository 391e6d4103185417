//! Tool permissions on the real cluster, through the installed gateway. An `always_ask` call of `bash` stops the
//! turn with `requires_action`; the wait survives the harness pods being replaced; a key of another tenant cannot
//! confirm it (404, nothing appended); the tenant's `allow` runs the call in the sandbox pod and the turn ends. A
//! `deny` runs nothing and the model's next request answers the call with the denial.
//!
//! The model is a stand-in on this host (`corral_e2e::model`) that records every request the harness sends it.
#![cfg(feature = "e2e")]

use std::{collections::HashSet, time::Duration};

use anyhow::Context as _;
use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{Client, Forward, data, gateway_url, is_end_turn, read_until, tenant, types},
    model::{ModelServer, Reply, tool_messages},
    wait,
};
use eventsource_stream::Event;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(240);
const COMMAND_OUTPUT: &str = "ran-in-the-sandbox";

/// A session of an agent whose `bash` always asks, driven through the gateway with the tenant's key.
struct Asking {
    api: Client,
    session: String,
    model: ModelServer,
    _model_forward: Forward,
}

/// Creates the agent (the model calls `bash`, then says `done`), an environment and a session in `ns`.
async fn asking_session(ns: &TestNamespace, base: &str) -> anyhow::Result<Asking> {
    let model = ModelServer::start(vec![
        Reply::ToolCall {
            name: "bash".into(),
            arguments: json!({ "command": format!("echo {COMMAND_OUTPUT}") }),
        },
        Reply::Text("done".into()),
    ])
    .await?;
    let forward = format!("{}-model", ns.name);
    let address = ns.cluster().forward_from_host(&forward, model.port)?;
    let model_forward = Forward::owned(forward);
    let api = tenant(base, ns.cluster(), &ns.name).await?;
    let agent = api
        .create("/v1/agents", json!({
            "name": "Asker",
            "model": { "id": "e2e-model", "provider": { "type": "openai", "base_url": format!("http://{address}") } },
            "tools": [{ "type": "agent_toolset_20260401",
                        "configs": [{ "name": "bash", "permission_policy": { "type": "always_ask" } }] }],
        }))
        .await?;
    let env = api
        .create(
            "/v1/environments",
            json!({
            "name": "box", "config": { "type": "cloud", "networking": { "type": "unrestricted" } } }),
        )
        .await?;
    let session = api
        .create("/v1/sessions", json!({ "agent": agent, "environment_id": env }))
        .await?;
    Ok(Asking {
        api,
        session,
        model,
        _model_forward: model_forward,
    })
}

impl Asking {
    fn events_path(&self) -> String {
        format!("/v1/sessions/{}/events", self.session)
    }

    /// Sends the user's message and reads the turn until it idles; checks that it waits for the `bash` call and
    /// returns the waiting `agent.tool_use` and the idle event.
    async fn until_confirmation_needed(&self) -> anyhow::Result<(Value, Event)> {
        let mut stream = self.api.stream(&self.session, None).await?;
        self.api
            .post(
                &self.events_path(),
                json!({ "events": [
                { "type": "user.message", "content": [{ "type": "text", "text": "Run the command" }] } ] }),
            )
            .await?;
        let live = read_until(&mut stream, |e| e.event == "session.status_idle").await?;
        let seen = types(&live);
        let tool_use = live
            .iter()
            .find(|e| e.event == "agent.tool_use")
            .map(data)
            .with_context(|| format!("an agent.tool_use before the idle: {seen:?}"))?;
        assert_eq!(tool_use["name"], "bash", "{tool_use}");
        assert_eq!(tool_use["evaluated_permission"], "ask", "{tool_use}");
        assert!(
            !seen.contains(&"agent.tool_result"),
            "nothing ran before the confirmation: {seen:?}"
        );
        let idle = live.last().context("an idle event")?.clone();
        let stop = &data(&idle)["stop_reason"];
        assert_eq!(stop["type"], "requires_action", "the turn waits: {stop}");
        assert_eq!(
            stop["event_ids"],
            json!([tool_use["id"]]),
            "naming the waiting call: {stop}"
        );
        Ok((tool_use, idle))
    }

    /// Sends the tenant's confirmation of `tool_use` and reads the stream (resumed after `idle`) to the end of the
    /// turn.
    async fn confirm(&self, tool_use: &Value, idle: &Event, decision: Value) -> anyhow::Result<Vec<Event>> {
        let mut confirmation = json!({ "type": "user.tool_confirmation", "tool_use_id": tool_use["id"] });
        if let (Some(c), Some(d)) = (confirmation.as_object_mut(), decision.as_object()) {
            c.extend(d.clone());
        }
        self.api
            .post(&self.events_path(), json!({ "events": [confirmation] }))
            .await?;
        let mut stream = self.api.stream(&self.session, Some(&idle.id)).await?;
        read_until(&mut stream, is_end_turn).await
    }

    /// The pods of the session's sandbox.
    async fn sandbox_pods(&self, ns: &TestNamespace) -> anyhow::Result<Vec<Pod>> {
        let selector = format!("corral.dev/session={}", self.session);
        Ok(ns
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await?
            .items)
    }
}

/// The one event of type `kind` in `events`.
fn only(events: &[Event], kind: &str) -> anyhow::Result<Value> {
    let found: Vec<Value> = events.iter().filter(|e| e.event == kind).map(data).collect();
    anyhow::ensure!(found.len() == 1, "one {kind} in {:?}", types(events));
    Ok(found[0].clone())
}

fn text_of(event: &Value) -> String {
    event["content"]
        .as_array()
        .map(|blocks| blocks.iter().filter_map(|b| b["text"].as_str()).collect())
        .unwrap_or_default()
}

/// Deletes every harness pod of the namespace at once and waits until the harness Deployment is available again
/// with none of them.
async fn replace_harness_pods(ns: &TestNamespace) -> anyhow::Result<()> {
    let pods = ns.harness_pods();
    let selector = ns.harness_selector();
    let before = pods.list(&ListParams::default().labels(&selector)).await?.items;
    anyhow::ensure!(!before.is_empty(), "a harness pod runs for the namespace");
    let old: HashSet<String> = before.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    for pod in before {
        pods.delete(
            &pod.metadata.name.unwrap_or_default(),
            &DeleteParams::default().grace_period(0),
        )
        .await?;
    }
    wait::until(
        "new harness pods, ready, and none of the old ones",
        TIMEOUT,
        || async {
            let now = pods.list(&ListParams::default().labels(&selector)).await?.items;
            let ready = |p: &Pod| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            };
            let replaced = !now.is_empty()
                && now
                    .iter()
                    .all(|p| p.metadata.uid.as_ref().is_some_and(|u| !old.contains(u)))
                && now.iter().all(ready);
            Ok(replaced.then_some(()))
        },
    )
    .await?;
    ns.harness_available(TIMEOUT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_ask_call_waits_across_a_harness_restart_and_runs_when_the_tenant_allows_it()
-> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "e2e-ask").await?;
    let other = TestNamespace::create(&cluster, "ask-other").await?;
    let other_name = other.name.clone();
    let result = TestNamespace::run(&cluster, "ask-restart", |ns| async move {
        let asking = asking_session(&ns, &base).await?;
        let (tool_use, idle) = asking.until_confirmation_needed().await?;
        assert!(
            asking.sandbox_pods(&ns).await?.is_empty(),
            "no sandbox: the call has not run"
        );
        let waiting = asking.api.history(&asking.session).await?;

        // Another tenant's key does not see the session: its confirmation is refused and nothing is appended.
        let stranger = tenant(&base, ns.cluster(), &other.name).await?;
        let (status, body) = stranger
            .call(
                reqwest::Method::POST,
                &asking.events_path(),
                Some(json!({ "events": [
                { "type": "user.tool_confirmation", "tool_use_id": tool_use["id"], "result": "allow" } ] })),
            )
            .await?;
        assert_eq!(status, 404, "another tenant cannot confirm: {body}");
        assert_eq!(body["error"]["type"], "not_found_error", "{body}");

        // The harness goes away while the session waits; the ones that replace it find the wait and do nothing.
        replace_harness_pods(&ns).await?;
        assert_eq!(
            asking.api.history(&asking.session).await?,
            waiting,
            "nothing appended by the stranger or the new harness"
        );
        assert_eq!(
            asking.model.requests().len(),
            1,
            "the model was asked once, before the wait"
        );

        // The tenant allows the call: it runs in the sandbox pod and the turn ends.
        let turn = asking
            .confirm(&tool_use, &idle, json!({ "result": "allow" }))
            .await?;
        let seen = types(&turn);
        let pos = |t: &str| seen.iter().position(|s| *s == t).unwrap_or(usize::MAX);
        assert!(
            pos("user.tool_confirmation") < pos("agent.tool_result"),
            "{seen:?}"
        );
        assert!(pos("agent.tool_result") < pos("agent.message"), "{seen:?}");
        let result = only(&turn, "agent.tool_result")?;
        assert_eq!(result["tool_use_id"], tool_use["id"], "{result}");
        assert_ne!(result["is_error"], true, "{result}");
        assert!(text_of(&result).contains(COMMAND_OUTPUT), "bash ran: {result}");
        assert_eq!(text_of(&only(&turn, "agent.message")?), "done");
        assert_eq!(
            asking.sandbox_pods(&ns).await?.len(),
            1,
            "the allowed call brought the sandbox pod"
        );
        let requests = asking.model.requests();
        assert_eq!(requests.len(), 2, "the model was asked again after the call");
        let answers = tool_messages(&requests[1]);
        assert!(
            answers.len() == 1 && answers[0].1.contains(COMMAND_OUTPUT),
            "the model read the output: {answers:?}"
        );
        Ok(())
    })
    .await;
    let _ = cluster.kubectl(&["delete", "namespace", &other_name, "--wait=false"]);
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_never_runs_and_the_model_reads_the_denial() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "e2e-deny").await?;
    TestNamespace::run(&cluster, "ask-deny", |ns| async move {
        let asking = asking_session(&ns, &base).await?;
        let (tool_use, idle) = asking.until_confirmation_needed().await?;
        let turn = asking
            .confirm(
                &tool_use,
                &idle,
                json!({ "result": "deny", "deny_message": "not on production, please" }),
            )
            .await?;
        let denial = "The user denied this tool call: not on production, please";
        let result = only(&turn, "agent.tool_result")?;
        assert_eq!(result["tool_use_id"], tool_use["id"], "{result}");
        assert_eq!(result["is_error"], true, "{result}");
        assert_eq!(text_of(&result), denial, "{result}");
        assert_eq!(text_of(&only(&turn, "agent.message")?), "done");
        assert!(
            asking.sandbox_pods(&ns).await?.is_empty(),
            "a denied call brings no sandbox"
        );

        // What the model was told: its next request answers the call with the denial.
        let requests = asking.model.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        let answers = tool_messages(&requests[1]);
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert!(
            answers[0].1.contains(denial),
            "the model reads the denial: {answers:?}"
        );
        let call_id = requests[1]["messages"]
            .as_array()
            .and_then(|m| m.iter().find_map(|m| m["tool_calls"][0]["id"].as_str()))
            .context("the model's own call in its history")?;
        assert_eq!(answers[0].0, call_id, "the denial answers that call");
        Ok(())
    })
    .await
}
