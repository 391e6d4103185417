//! The wall around a namespace's Secrets (issue 14, finding 2): an Agent's `apiKeySecretRef` is sent to the
//! model's `baseUrl`, a server of the Agent author's choosing, so it must reach only Secrets meant as model keys.
//! A listener on the test's host (an internal host the platform opened) plays the author's server and logs the headers it receives. Agents
//! aimed at it name (a) a vault credential made through the API, (b) an unlabelled Secret and (c) a sandbox token
//! Secret as earlier versions left them, holding a live daemon token; (a) and (c) even forged with the model-key
//! label: the listener never sees their values, and each session and Agent says why. The same Agent with a
//! labelled model key does reach the listener, so the probe works. And once a sandbox is up, no Secret and no pod
//! spec of the tenant's namespace holds its daemon's token (which the harness reads from Redis).
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_api::{Agent, events::EventBody};
use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{gateway_url, tenant},
    sandbox::{bash, client, manifests, request_sandbox, sandbox_token, wait_ready},
    wait,
};
use corral_sandbox_protocol::pod::TOKEN_KEY;
use corral_session::{Config, Order, Store};
use k8s_openapi::api::core::v1::{Pod, Secret};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

/// A server on this host (reached from the cluster at 10.201.0.1, a host the platform opened to the harness) that
/// answers every request with a 400 and prints its method, path and headers, one request a line.
const LISTENER: &str = r#"
import http.server, json, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        print("REQUEST", self.command, self.path, json.dumps(dict(self.headers)), flush=True)
        body = b'{"error": {"type": "invalid_request_error", "message": "the listener only listens"}}'
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// Starts [`LISTENER`] on a free loopback port, printing into `record`: the process and the port.
fn start_listener(record: &std::path::Path) -> anyhow::Result<(std::process::Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = std::process::Command::new("python3")
        .args(["-c", LISTENER, &port.to_string()])
        .stdout(std::fs::File::create(record)?)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    Ok((child, port))
}

/// An Agent `name` on the OpenAI-compatible provider at `base_url` whose key is `secret`/`key`.
fn agent(name: &str, base_url: &str, secret: &str, key: &str) -> String {
    format!(
        "apiVersion: corral.dev/v1alpha1\nkind: Agent\nmetadata: {{name: {name}}}\nspec:\n  model:\n    id: m\n    \
         provider: {{type: openai, baseUrl: \"{base_url}\", apiKeySecretRef: {{name: {secret}, key: {key}}}}}\n\
         ---\napiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {{name: {name}}}\nspec:\n  \
         agent: {{name: {name}}}\n  environmentRef: {{name: box}}\n"
    )
}

/// A random-looking value no other test writes.
fn canary(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("canary-{what}-{nanos:x}")
}

/// Creates Secret `name` holding `value` under key `key`, the way a user does.
fn create_secret(ns: &TestNamespace, name: &str, value: &str) -> anyhow::Result<String> {
    let literal = format!("--from-literal=key={value}");
    ns.cluster()
        .kubectl(&["-n", &ns.name, "create", "secret", "generic", name, &literal])
}

/// The Agent's Ready condition: (status, reason, message).
async fn readiness(ns: &TestNamespace, name: &str) -> anyhow::Result<Option<(String, String, String)>> {
    let agent = ns.api::<Agent>().get(name).await?;
    Ok(agent.status.and_then(|s| {
        corral_api::conditions::find(&s.conditions, "Ready")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    }))
}

#[tokio::test]
async fn a_model_key_reference_reaches_only_labelled_model_keys() -> anyhow::Result<()> {
    let url = corral_e2e::installed_redis_url()?;
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "e2e-wall-secrets").await?;
    let dir = tempfile::tempdir()?;
    let record = dir.path().join("requests");
    let (mut listener, port) = start_listener(&record)?;
    let result = TestNamespace::run(&cluster, "wall-secrets", |ns| async move {
        let address = ns
            .cluster()
            .forward_from_host(&format!("{}-listen", ns.name), port)?;
        let _forward = corral_e2e::gateway::Forward::owned(format!("{}-listen", ns.name));
        // A sandbox, so the daemon's token exists wherever the operator keeps it.
        ns.apply(&manifests("{}", ""))?;
        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "the sandbox of s1 Ready").await?;
        let pod = ready
            .status
            .as_ref()
            .and_then(|s| s.sandbox.as_ref())
            .and_then(|s| s.pod.clone())
            .unwrap_or_default();
        let token = sandbox_token(&ns.name, &pod)
            .await?
            .ok_or_else(|| anyhow::anyhow!("Redis holds the daemon token of {pod}"))?;
        // The token in Redis is the live one: the daemon runs a tool with it.
        let daemon = client(&ns, &ready, &format!("{}-a", ns.name)).await?;
        assert_eq!(bash(&daemon, "echo live").await?.trim(), "live");
        // The API returns Secret data decoded: every value of every Secret is compared.
        let secrets = ns.api::<Secret>().list(&Default::default()).await?.items;
        for secret in &secrets {
            let values = secret
                .data
                .iter()
                .flatten()
                .map(|(_, v)| String::from_utf8_lossy(&v.0).into_owned());
            let string_values = secret.string_data.iter().flatten().map(|(_, v)| v.clone());
            for value in values.chain(string_values) {
                assert!(
                    !value.contains(&token),
                    "Secret {:?} holds the daemon token",
                    secret.metadata.name
                );
            }
        }
        let pods = serde_json::to_string(&ns.api::<Pod>().list(&Default::default()).await?.items)?;
        assert!(!pods.contains(&token), "no pod spec holds the daemon token");
        assert!(
            pods.contains(&corral_sandbox_protocol::pod::token_sha256(&token)),
            "the sandbox pod carries the token's digest (so the probe above looked at the right pod)"
        );
        let base_url = format!("http://{address}");

        // (a) A vault credential made through the API, forged with the model-key label.
        let api = tenant(&base, ns.cluster(), &ns.name).await?;
        let vault = api
            .create("/v1/vaults", json!({ "display_name": "Wall" }))
            .await?;
        let vault_canary = canary("vault");
        let credential = api
            .post(
                &format!("/v1/vaults/{vault}/credentials"),
                json!({ "display_name": "wall token",
                        "auth": { "type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp",
                                  "token": vault_canary } }),
            )
            .await?;
        let credential_id = credential["id"].as_str().unwrap_or_default().to_owned();
        anyhow::ensure!(
            !credential_id.is_empty(),
            "the credential has an id: {credential}"
        );
        // (b) A Secret of the namespace that is not labelled as a model key.
        let plain_canary = canary("plain");
        create_secret(&ns, "plain", &plain_canary)?;
        // (d) The same, labelled as a model key: this one must reach the listener.
        let model_canary = canary("model");
        create_secret(&ns, "model", &model_canary)?;
        ns.cluster().kubectl(&[
            "-n",
            &ns.name,
            "label",
            "secret",
            "model",
            "corral.dev/credential=model",
        ])?;
        // (c) A sandbox token Secret as earlier versions kept one (the operator deletes those when it starts),
        // holding the live token, forged with the model-key label.
        let leftover: Secret = serde_json::from_value(json!({
            "metadata": { "name": "sandbox-leftover", "labels": {
                "app.kubernetes.io/name": "corral",
                "app.kubernetes.io/component": corral_sandbox_protocol::pod::LEGACY_TOKEN_SECRET_COMPONENT,
                "app.kubernetes.io/managed-by": "corral-operator" } },
            "stringData": { TOKEN_KEY: token },
        }))?;
        ns.api::<Secret>().create(&Default::default(), &leftover).await?;
        for secret in [credential_id.as_str(), "sandbox-leftover"] {
            ns.cluster().kubectl(&[
                "-n",
                &ns.name,
                "label",
                "--overwrite",
                "secret",
                secret,
                "corral.dev/credential=model",
            ])?;
        }
        let refused = [
            (
                "thief-vault",
                credential_id.clone(),
                "auth",
                vault_canary.clone(),
                "vault credential",
            ),
            (
                "thief-plain",
                "plain".to_owned(),
                "key",
                plain_canary.clone(),
                "lacks the label corral.dev/credential=model",
            ),
            (
                "thief-token",
                "sandbox-leftover".to_owned(),
                TOKEN_KEY,
                token.clone(),
                "never readable as a model key",
            ),
        ];
        for (name, secret, key, _, _) in &refused {
            ns.apply(&agent(name, &base_url, secret, key))?;
        }
        ns.apply(&agent("honest", &base_url, "model", "key"))?;

        ns.harness_available(TIMEOUT).await?;
        let store = Store::connect(&url, Config::default()).await?;
        let message: EventBody = serde_json::from_value(json!({
            "type": "user.message", "content": [{"type": "text", "text": "hello"}]
        }))?;
        let mut sessions: Vec<&str> = refused.iter().map(|r| r.0).collect();
        sessions.push("honest");
        for session in &sessions {
            store
                .session(&ns.name, session)
                .append_user([message.clone()])
                .await?;
            store.enqueue(&ns.name, session).await?;
        }

        let listener_log = || anyhow::Ok(std::fs::read_to_string(&record)?);
        wait::until(
            "the labelled model key to reach the listener",
            TIMEOUT,
            || async {
                let log = listener_log()?;
                Ok(log.contains(&format!("Bearer {model_canary}")).then_some(()))
            },
        )
        .await?;
        for (name, secret, _, secret_value, why) in &refused {
            let log = store.session(&ns.name, name);
            let error = wait::until(
                &format!("session {name} to report the refused key"),
                TIMEOUT,
                || async {
                    let page = log.range(None, 1000, Order::Asc).await?;
                    Ok(page
                        .events
                        .iter()
                        .find(|e| e.event.body.type_name() == "session.error")
                        .map(|e| serde_json::to_string(&e.event))
                        .transpose()?)
                },
            )
            .await?;
            assert!(
                error.contains(secret.as_str()) && error.contains(why),
                "session {name}: {error}"
            );
            assert!(
                !error.contains(secret_value.as_str()),
                "the error does not hold the value: {error}"
            );
            let (status, reason, message) =
                wait::until(&format!("Agent {name} not Ready"), TIMEOUT, || async {
                    Ok(readiness(&ns, name).await?.filter(|r| r.0 == "False"))
                })
                .await?;
            assert_eq!(
                (status.as_str(), reason.as_str()),
                ("False", "SecretNotAllowed"),
                "{message}"
            );
            assert!(
                message.contains(secret.as_str()) && message.contains(why),
                "Agent {name}: {message}"
            );
        }
        // The operator may not have reconciled the honest Agent yet (its session already ran): wait for its verdict.
        let honest = wait::until("Agent honest to get its Ready condition", TIMEOUT, || async {
            Ok(readiness(&ns, "honest").await?.map(|r| r.0))
        })
        .await?;
        assert_eq!(honest, "True");
        let log = listener_log()?;
        for (name, _, _, secret_value, _) in &refused {
            assert!(
                !log.contains(secret_value.as_str()),
                "Agent {name} sent its Secret's value to the listener:\n{log}"
            );
        }
        Ok(())
    })
    .await;
    let _ = listener.kill();
    result
}
