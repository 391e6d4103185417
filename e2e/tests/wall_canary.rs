//! Secret canaries on the real cluster: random values planted in a model key, in each kind of vault credential
//! (`environment_variable`, `static_bearer`, `mcp_oauth`), a repository token Secret beside them, and the Redis
//! passwords of the installation, are each used where they belong (the model gets its key, the allowed host and the MCP server
//! their credentials through the egress proxy and the harness) and appear nowhere else: not in the sandbox
//! (environment, `/proc/*/environ`, `/proc/*/cmdline`, files), not in any event or API response, component log,
//! Kubernetes event, object status or metric.
#![cfg(feature = "e2e")]

use anyhow::Context as _;
use corral_e2e::{
    Cluster, TestNamespace,
    cluster::HOST_IP,
    gateway::{Client, Forward, gateway_url, is_end_turn, read_until, tenant},
    host::recorder,
    mcp::WeatherServer,
    model::{ModelServer, Reply},
};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use serde_json::json;

/// A random canary of `kind`, under this run's `prefix`.
fn canary(prefix: &str, kind: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}-{kind}-{hex}"))
}

/// Every value of every Secret in `namespace` labelled as Redis's (the installation's Redis passwords).
async fn redis_passwords(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let mut out = Vec::new();
    for secret in secrets.list(&ListParams::default()).await?.items {
        let name = secret.metadata.name.clone().unwrap_or_default();
        if !name.contains("redis") {
            continue;
        }
        for value in secret.data.unwrap_or_default().values() {
            let text = String::from_utf8_lossy(&value.0).into_owned();
            // A URL carries the password after the user; a bare password is taken whole.
            let password = match text.rsplit_once('@') {
                Some((creds, _)) => creds.rsplit(':').next().unwrap_or_default().to_owned(),
                None => text,
            };
            if password.len() >= 16 {
                out.push(password);
            }
        }
    }
    Ok(out)
}

/// The `/metrics` text of every Corral pod in the installation's namespace that serves one.
fn metrics(cluster: &Cluster) -> anyhow::Result<String> {
    let pods: serde_json::Value = serde_json::from_str(&cluster.kubectl(&[
        "-n",
        &cluster.corral_namespace,
        "get",
        "pods",
        "--field-selector=status.phase=Running",
        "-o",
        "json",
    ])?)?;
    let mut text = String::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
            for port in container["ports"].as_array().into_iter().flatten() {
                let (Some(number), Some(port_name)) = (port["containerPort"].as_i64(), port["name"].as_str())
                else {
                    continue;
                };
                if !port_name.contains("metrics") {
                    continue;
                }
                let path = format!(
                    "/api/v1/namespaces/{}/pods/{name}:{number}/proxy/metrics",
                    cluster.corral_namespace
                );
                if let Ok(body) = cluster.kubectl(&["get", "--raw", &path]) {
                    text.push_str(&body);
                }
            }
        }
    }
    anyhow::ensure!(text.contains("corral_"), "no Corral metrics could be read");
    Ok(text)
}

/// Everything a tenant or an operator can see about the session, as text.
async fn observable(
    api: &Client,
    ns: &TestNamespace,
    ids: &[(&str, &str)],
) -> anyhow::Result<Vec<(String, String)>> {
    let cluster = ns.cluster();
    let mut seen = Vec::new();
    for (path, id) in ids {
        let body = api
            .ok(reqwest::Method::GET, &format!("{path}/{id}"), None)
            .await?;
        seen.push((format!("GET {path}/{id}"), body.to_string()));
        let list = api.ok(reqwest::Method::GET, path, None).await?;
        seen.push((format!("GET {path}"), list.to_string()));
    }
    let session = ids
        .iter()
        .find(|(p, _)| *p == "/v1/sessions")
        .map(|(_, id)| *id)
        .unwrap_or_default();
    seen.push((
        "the session's events".into(),
        serde_json::to_string(&api.history(session).await?)?,
    ));
    let vault = ids
        .iter()
        .find(|(p, _)| *p == "/v1/vaults")
        .map(|(_, id)| *id)
        .unwrap_or_default();
    let credentials = api
        .ok(
            reqwest::Method::GET,
            &format!("/v1/vaults/{vault}/credentials"),
            None,
        )
        .await?;
    seen.push(("the vault's credentials".into(), credentials.to_string()));
    for namespace in [ns.name.as_str(), cluster.corral_namespace.as_str()] {
        seen.push((
            format!("logs in {namespace}"),
            cluster.running_pod_logs(namespace, "app.kubernetes.io/name=corral")?,
        ));
        seen.push((
            format!("the objects of {namespace}"),
            cluster.kubectl(&[
                "-n",
                namespace,
                "get",
                "agents,environments,sessions,pods,configmaps",
                "-o",
                "json",
            ])?,
        ));
    }
    seen.push((
        "the sandbox's logs".into(),
        cluster
            .running_pod_logs(&ns.name, "corral.dev/session")
            .unwrap_or_default(),
    ));
    seen.push((
        "Kubernetes events".into(),
        cluster.kubectl(&["get", "events", "-A", "-o", "json"])?,
    ));
    seen.push(("metrics".into(), metrics(cluster)?));
    Ok(seen)
}

#[tokio::test]
async fn planted_secrets_reach_only_where_they_belong() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "wall-canary").await?;
    let dir = tempfile::tempdir()?;
    let record = dir.path().join("requests");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut host = recorder(port, &record)?;
    let prefix = canary("cnry", "run")?;
    let result = TestNamespace::run(&cluster, "wall-canary", |ns| {
        let (base, record, prefix) = (base.clone(), record.clone(), prefix.clone());
        async move {
            let cluster = ns.cluster();
            let [model_key, env_value, bearer, access, refresh, client_secret, repo_token] =
                ["model", "env", "bearer", "access", "refresh", "client", "repo"].map(|k| canary(&prefix, k));
            let (model_key, env_value, bearer) = (model_key?, env_value?, bearer?);
            let (access, refresh, client_secret, repo_token) = (access?, refresh?, client_secret?, repo_token?);

            let allowed = cluster.forward_from_host(&format!("{}-host", ns.name), port)?;
            let weather = WeatherServer::start(&bearer).await?;
            let mcp_address = cluster.forward_from_host(&format!("{}-mcp", ns.name), weather.port)?;
            let mcp_url = format!("http://{mcp_address}/mcp");
            // The sandbox looks for every value of this run everywhere it can, and uses the env credential.
            let search = format!(
                "env; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; \
                 cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; \
                 grep -rIho --exclude-dir=proc --exclude-dir=sys '{prefix}-[a-z]*-[0-9a-f]*' / 2>/dev/null | sort -u; \
                 curl -sS -H \"Authorization: Bearer $API_TOKEN\" http://{allowed}/canary"
            );
            let model = ModelServer::start(vec![
                Reply::ToolCall { name: "bash".into(), arguments: json!({ "command": search }) },
                Reply::ToolCall { name: "forecast".into(), arguments: json!({ "city": "Oslo" }) },
                Reply::Text("done".into()),
            ])
            .await?;
            let model_address = cluster.forward_from_host(&format!("{}-model", ns.name), model.port)?;
            let _forwards = [
                Forward::owned(format!("{}-host", ns.name)),
                Forward::owned(format!("{}-mcp", ns.name)),
                Forward::owned(format!("{}-model", ns.name)),
            ];
            ns.apply(&format!(
                r#"
apiVersion: v1
kind: Secret
metadata: {{name: model-key, labels: {{corral.dev/credential: model}}}}
stringData: {{key: "{model_key}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: repo-token}}
stringData: {{token: "{repo_token}"}}
"#
            ))?;

            let api = tenant(&base, cluster, &ns.name).await?;
            let vault = api.create("/v1/vaults", json!({ "display_name": "canaries" })).await?;
            for auth in [
                json!({"type": "environment_variable", "secret_name": "API_TOKEN", "secret_value": env_value,
                       "networking": {"type": "limited", "allowed_hosts": [HOST_IP]}}),
                json!({"type": "static_bearer", "mcp_server_url": mcp_url, "token": bearer}),
                json!({"type": "mcp_oauth", "mcp_server_url": "https://mcp.example.com/mcp", "access_token": access,
                       "refresh": {"client_id": "c", "refresh_token": refresh,
                                   "token_endpoint": "https://auth.example.com/token",
                                   "token_endpoint_auth": {"type": "client_secret_post", "client_secret": client_secret}}}),
            ] {
                let created = api
                    .post(&format!("/v1/vaults/{vault}/credentials"), json!({ "display_name": "c", "auth": auth }))
                    .await?;
                anyhow::ensure!(!created.to_string().contains(&prefix), "a credential is echoed: {created}");
            }
            let agent = api
                .create(
                    "/v1/agents",
                    json!({
                        "name": "Canary",
                        "model": {"id": "e2e-model", "provider": {"type": "openai",
                                  "base_url": format!("http://{model_address}"),
                                  "api_key_secret_ref": {"name": "model-key", "key": "key"}}},
                        "mcp_servers": [{"type": "url", "name": "weather", "url": mcp_url}],
                        "tools": [{"type": "agent_toolset_20260401"},
                                  {"type": "mcp_toolset", "mcp_server_name": "weather",
                                   "default_config": {"permission_policy": {"type": "always_allow"}}}],
                    }),
                )
                .await?;
            let env = api
                .create(
                    "/v1/environments",
                    json!({"name": "box", "config": {"type": "cloud",
                           "networking": {"type": "limited", "allowed_hosts": [allowed]}}}),
                )
                .await?;
            let session = api
                .create(
                    "/v1/sessions",
                    json!({"agent": agent, "environment_id": env, "vault_ids": [vault]}),
                )
                .await?;
            let mut stream = api.stream(&session, None).await?;
            api.post(
                &format!("/v1/sessions/{session}/events"),
                json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "look around"}]}]}),
            )
            .await?;
            read_until(&mut stream, is_end_turn).await?;

            // The permitted positions: each used credential arrived where it belongs, so the canaries were live.
            assert!(
                model.authorizations().iter().any(|a| a == &format!("Bearer {model_key}")),
                "the model got its key"
            );
            let at_host = std::fs::read_to_string(&record).context("the allowed host was called")?;
            assert!(at_host.contains(&env_value), "the proxy injected the env credential at its host: {at_host}");
            assert!(!weather.calls().is_empty(), "the MCP server was called with its token");

            let mut secrets: Vec<(&str, String)> = vec![
                ("model key", model_key),
                ("environment_variable value", env_value),
                ("static_bearer token", bearer),
                ("mcp_oauth access token", access),
                ("mcp_oauth refresh token", refresh),
                ("mcp_oauth client secret", client_secret),
                ("repository token", repo_token),
            ];
            for password in redis_passwords(cluster).await? {
                secrets.push(("the Redis password", password));
            }
            let ids = [
                ("/v1/agents", agent.as_str()),
                ("/v1/environments", env.as_str()),
                ("/v1/sessions", session.as_str()),
                ("/v1/vaults", vault.as_str()),
            ];
            let seen = observable(&api, &ns, &ids).await?;
            let pods = ns.api::<Pod>().list(&ListParams::default().labels("corral.dev/session")).await?;
            anyhow::ensure!(!pods.items.is_empty(), "the sandbox pod still runs, so its view was searched");
            for (what, value) in &secrets {
                for (place, text) in &seen {
                    assert!(!text.contains(value.as_str()), "the {what} appears in {place}");
                }
            }
            Ok(())
        }
    })
    .await;
    let _ = host.kill();
    result
}
