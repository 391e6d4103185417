//! Driving a session's sandbox the way the harness does: asking for it through the Session's status, waiting for
//! its endpoint, and running tools through the real daemon over a forward into the cluster.

use std::time::Duration;

use corral_api::{Session, labels::HARNESS_FIELD_MANAGER, session::SandboxPhase};
use corral_sandbox_protocol::SandboxClient;
use corral_session::keys::Tenant;
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::{TestNamespace, wait};

/// An Agent `helper` on the scripted provider with an empty script: the sandbox tests play the harness's part
/// themselves, so the model is never asked.
pub const IDLE_AGENT: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: script}
data: {script.yaml: "turns: []"}
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: helper}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: script, key: script.yaml}}
"#;

/// The manifests of a sandbox test: [`IDLE_AGENT`], an Environment `box` with `env_spec`, and a Session `s1` of
/// both (`session_extra` is appended to the Session's spec, e.g. its `vaultRefs`).
pub fn manifests(env_spec: &str, session_extra: &str) -> String {
    format!(
        r#"{IDLE_AGENT}
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {{name: box}}
spec: {env_spec}
---
apiVersion: corral.dev/v1alpha1
kind: Session
metadata: {{name: s1}}
spec:
  agent: {{name: helper}}
  environmentRef: {{name: box}}
  {session_extra}
"#
    )
}

/// How long the sandbox tests wait for a state.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Asks for a sandbox the way the harness does.
pub async fn request_sandbox(ns: &TestNamespace, session: &str) -> anyhow::Result<()> {
    let patch = json!({
        "apiVersion": "corral.dev/v1alpha1",
        "kind": "Session",
        "status": { "sandbox": { "requestedAt": Timestamp::now().to_string() } }
    });
    ns.api::<Session>()
        .patch_status(
            session,
            &PatchParams::apply(HARNESS_FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

/// The phase of the session's sandbox, if any.
pub fn sandbox_phase(s: &Session) -> Option<SandboxPhase> {
    s.status
        .as_ref()
        .and_then(|s| s.sandbox.as_ref())
        .and_then(|b| b.phase)
}

/// Waits until session `s1`'s sandbox is Ready.
pub async fn wait_ready(ns: &TestNamespace, what: &str) -> anyhow::Result<Session> {
    wait::object(&ns.api::<Session>(), "s1", TIMEOUT, what, |s: &Session| {
        sandbox_phase(s) == Some(SandboxPhase::Ready)
    })
    .await
}

/// A client for the session's daemon, through a forward from this host into the cluster, with the daemon's token
/// read where the harness reads it (Redis, under the tenant's prefix).
pub async fn client(ns: &TestNamespace, session: &Session, forward: &str) -> anyhow::Result<SandboxClient> {
    let sandbox = session.status.as_ref().and_then(|s| s.sandbox.as_ref());
    let endpoint = sandbox.and_then(|b| b.endpoint.clone());
    let endpoint = endpoint.ok_or_else(|| anyhow::anyhow!("a Ready sandbox publishes its endpoint"))?;
    let pod = sandbox.and_then(|b| b.pod.clone());
    let pod = pod.ok_or_else(|| anyhow::anyhow!("a Ready sandbox names its pod"))?;
    let token = sandbox_token(&ns.name, &pod)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Redis holds the token of sandbox pod {pod}"))?;
    let port = ns.cluster().forward(forward, &endpoint)?;
    Ok(SandboxClient::new(format!("http://127.0.0.1:{port}"), token)?)
}

/// The daemon token of sandbox pod `pod` in `namespace`, from the installed Redis (`CORRAL_E2E_REDIS_URL`).
pub async fn sandbox_token(namespace: &str, pod: &str) -> anyhow::Result<Option<String>> {
    let url = crate::installed_redis_url()?;
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    Ok(redis::cmd("GET")
        .arg(Tenant::new(namespace).sandbox_token(pod))
        .query_async(&mut conn)
        .await?)
}

/// Runs `command` with the `bash` tool; its output, or an error when the tool reports one.
pub async fn bash(client: &SandboxClient, command: &str) -> anyhow::Result<String> {
    let result = client
        .execute("bash", json!({ "command": command }), Duration::from_secs(60))
        .await?;
    let text = result.text();
    anyhow::ensure!(!result.is_error, "bash {command:?} failed: {text}");
    Ok(text)
}

/// The pods of session `s1`.
pub async fn session_pods(ns: &TestNamespace) -> anyhow::Result<Vec<Pod>> {
    Ok(ns
        .api::<Pod>()
        .list(&ListParams::default().labels("corral.dev/session=s1"))
        .await?
        .items)
}
