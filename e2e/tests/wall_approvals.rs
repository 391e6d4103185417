//! The approvals wall on the real cluster: with approvals delegated to Kubernetes RBAC (`--approval-rbac`), a tool
//! call waiting for a person is confirmed only by an approver whose own Kubernetes token the API server vouches for
//! (TokenReview) and whom RBAC allows `approve` on the Session (SubjectAccessReview). From a tenant's position
//! (its API key, and whatever it may write in its namespace, such as annotations on its key's Secret) no
//! confirmation gets in; the permitted approver's does, and the call then runs in the sandbox.
//!
//! The gateway under test is this checkout's binary (`CORRAL_E2E_GATEWAY_BIN`) run with `--approval-rbac`, talking
//! to the installed Redis and to the API server *as the installed gateway's ServiceAccount* (impersonated), so the
//! chart's RBAC for the gateway (`create tokenreviews`, `create subjectaccessreviews`) is what is exercised. The
//! harness, sandbox and operator are the installed ones.
#![cfg(feature = "e2e")]

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{Client, Forward, data, is_end_turn, read_until, types},
    model::{ModelServer, Reply},
};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Secret, ServiceAccount},
};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const COMMAND_OUTPUT: &str = "approved-and-ran";
const APPROVER_HEADER: &str = "X-Corral-Approver-Token";

/// The gateway binary, serving on a loopback port until dropped.
struct LocalGateway {
    child: Child,
    url: String,
    _kubeconfig: tempfile::TempDir,
}

impl Drop for LocalGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `corral-gateway serve --approval-rbac` acting as the installed gateway's ServiceAccount.
async fn local_gateway(cluster: &Cluster) -> anyhow::Result<LocalGateway> {
    let bin = std::env::var("CORRAL_E2E_GATEWAY_BIN")
        .context("CORRAL_E2E_GATEWAY_BIN must name the gateway binary (hack/e2e.sh)")?;
    let redis = std::env::var("CORRAL_E2E_REDIS_URL")
        .context("CORRAL_E2E_REDIS_URL must point at the installed Redis (hack/e2e.sh)")?;
    let source = std::env::var("KUBECONFIG").context("KUBECONFIG (hack/e2e.sh sets it)")?;
    let mut kubeconfig: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&source)?)?;
    let account = format!(
        "system:serviceaccount:{}:corral-gateway",
        cluster.corral_namespace
    );
    for user in kubeconfig["users"]
        .as_sequence_mut()
        .context("kubeconfig users")?
    {
        user["user"]["as"] = serde_yaml::Value::String(account.clone());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig)?)?;
    let port = free_port()?;
    let child = Command::new(bin)
        .args(["serve", "--approval-rbac"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--redis-url", &redis])
        .env("KUBECONFIG", &path)
        .env("CORRAL_LOG", "warn,corral_gateway=info")
        .stdout(Stdio::null())
        .spawn()
        .context("starting the gateway binary")?;
    let gateway = LocalGateway {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _kubeconfig: dir,
    };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(format!("{}/readyz", gateway.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(gateway);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the local gateway never became ready")
}

/// A token of ServiceAccount `name` (created if missing) in `ns`, for the API server's audiences.
async fn token_of(ns: &TestNamespace, name: &str) -> anyhow::Result<String> {
    let accounts = ns.api::<ServiceAccount>();
    if accounts.get_opt(name).await?.is_none() {
        let account: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
        accounts.create(&PostParams::default(), &account).await?;
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    Ok(accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await?
        .status
        .context("a token")?
        .token)
}

/// Posts a confirmation of `tool_use` with the tenant's key and, when given, an approver token.
async fn confirm(
    base: &str,
    key: &str,
    session: &str,
    tool_use: &Value,
    approver: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/sessions/{session}/events"))
        .header("x-api-key", key)
        .json(&json!({ "events": [
            { "type": "user.tool_confirmation", "tool_use_id": tool_use["id"], "result": "allow" } ] }));
    if let Some(token) = approver {
        req = req.header(APPROVER_HEADER, token);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn confirmations(history: &[Value]) -> usize {
    history
        .iter()
        .filter(|e| e["type"] == "user.tool_confirmation")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_approver_the_api_server_vouches_for_and_rbac_allows_confirms_a_tool_call()
-> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let gateway = local_gateway(&cluster).await?;
    let base = gateway.url.clone();
    TestNamespace::run(&cluster, "wall-approvals", |ns| async move {
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
        let _model_forward = Forward::owned(forward);
        let key = corral_e2e::gateway::create_key(ns.cluster(), &ns.name).await?;
        let api = Client::new(&base, Some(&key));
        api.wait_until_accepted().await?;
        let agent = api
            .create("/v1/agents", json!({
                "name": "Asker",
                "model": { "id": "e2e-model", "provider": { "type": "openai", "base_url": format!("http://{address}") } },
                "tools": [{ "type": "agent_toolset_20260401",
                            "configs": [{ "name": "bash", "permission_policy": { "type": "always_ask" } }] }],
            }))
            .await?;
        let env = api
            .create("/v1/environments", json!({
                "name": "box", "config": { "type": "cloud", "networking": { "type": "unrestricted" } } }))
            .await?;
        let session = api
            .create("/v1/sessions", json!({ "agent": agent, "environment_id": env }))
            .await?;
        let path = format!("/v1/sessions/{session}/events");

        // The turn stops at the always_ask call.
        let mut stream = api.stream(&session, None).await?;
        api.post(&path, json!({ "events": [
            { "type": "user.message", "content": [{ "type": "text", "text": "Run the command" }] } ] }))
            .await?;
        let live = read_until(&mut stream, |e| e.event == "session.status_idle").await?;
        let tool_use = live
            .iter()
            .find(|e| e.event == "agent.tool_use")
            .map(data)
            .with_context(|| format!("an agent.tool_use: {:?}", types(&live)))?;
        let idle = live.last().context("the idle")?.clone();
        assert_eq!(data(&idle)["stop_reason"]["type"], "requires_action");

        // Alice may approve; Bob may not.
        ns.apply(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: session-approver}}\n\
             rules: [{{apiGroups: [corral.dev], resources: [sessions], verbs: [approve]}}]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: session-approvers}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: session-approver}}\n\
             subjects: [{{kind: ServiceAccount, name: alice, namespace: {}}}]\n",
            ns.name
        ))?;
        let alice = token_of(&ns, "alice").await?;
        let bob = token_of(&ns, "bob").await?;

        // The tenant's key alone.
        let (status, body) = confirm(&base, &key, &session, &tool_use, None).await?;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["type"], "permission_error", "{body}");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains("x-corral-approver-token"), "{body}");

        // What a tenant may write in its namespace: annotations on its key's Secret naming Alice. They grant nothing.
        let secrets = ns.api::<Secret>();
        let alice_user = format!("system:serviceaccount:{}:alice", ns.name);
        for secret in secrets.list(&ListParams::default().labels("corral.dev/api-key=true")).await?.items {
            let name = secret.metadata.name.unwrap_or_default();
            let patch = json!({ "metadata": { "annotations": {
                "corral.dev/rbac-user": alice_user, "corral.dev/rbac-groups": "system:masters" } } });
            secrets.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (status, body) = confirm(&base, &key, &session, &tool_use, None).await?;
        assert_eq!(status, 403, "annotations name no approver: {body}");

        // A token that is no Kubernetes token, and Bob's real one.
        let (status, body) = confirm(&base, &key, &session, &tool_use, Some("forged.token.value")).await?;
        assert_eq!(status, 403, "{body}");
        let (status, body) = confirm(&base, &key, &session, &tool_use, Some(&bob)).await?;
        assert_eq!(status, 403, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(":bob\" may not approve"), "{body}");
        assert_eq!(confirmations(&api.history(&session).await?), 0, "nothing was appended");
        assert_eq!(model.requests().len(), 1, "the model was asked once, before the wait");

        // Alice's own token: allowed (RBAC may take a moment to see the new binding), and the call runs.
        let mut allowed = None;
        for _ in 0..50 {
            let (status, body) = confirm(&base, &key, &session, &tool_use, Some(&alice)).await?;
            if status == 200 {
                allowed = Some(body);
                break;
            }
            assert_eq!(status, 403, "{body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let allowed = allowed.context("alice's confirmation accepted")?;
        assert_eq!(allowed["data"][0]["type"], "user.tool_confirmation", "{allowed}");
        let mut stream = api.stream(&session, Some(&idle.id)).await?;
        let turn = read_until(&mut stream, is_end_turn).await?;
        let result = turn
            .iter()
            .find(|e| e.event == "agent.tool_result")
            .map(data)
            .with_context(|| format!("a tool result: {:?}", types(&turn)))?;
        assert!(result.to_string().contains(COMMAND_OUTPUT), "bash ran: {result}");
        assert_eq!(confirmations(&api.history(&session).await?), 1);
        Ok(())
    })
    .await
}
