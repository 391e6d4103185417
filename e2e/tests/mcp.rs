//! An MCP server end to end on the real cluster, through the installed gateway: a real `rmcp` server on this host
//! behind a bearer token (reached by the harness pod at 10.201.0.1), the token in a vault created through the
//! vaults API and named by the session's `vault_ids`. The harness lists the server's tools into the model's tool
//! set (a disabled one left out), the model calls one, and the session log has `agent.mcp_tool_use` /
//! `agent.mcp_tool_result` with the server's answer; the token is in no event and no harness log line.
//!
//! The model is a stand-in on this host (`corral_e2e::model`) that records every request the harness sends it.
#![cfg(feature = "e2e")]

use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{self, Client, Forward, create_key, data, gateway_url, is_end_turn, read_until, types},
    mcp::WeatherServer,
    model::{ModelServer, Reply, tool_messages, tool_names},
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_and_calls_the_tools_of_its_mcp_server_with_a_vault_token() -> anyhow::Result<()> {
    if !gateway::enabled() {
        return Ok(());
    }
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "e2e-mcp").await?;
    TestNamespace::run(&cluster, "mcp", |ns| async move {
        let token = format!("e2e-mcp-token-{}", std::process::id());
        let weather = WeatherServer::start(&token).await?;
        let forward = format!("{}-mcp", ns.name);
        let mcp_address = ns.cluster().forward_from_host(&forward, weather.port)?;
        let _mcp_forward = Forward::owned(forward);
        let mcp_url = format!("http://{mcp_address}/mcp");
        let model = ModelServer::start(vec![
            Reply::ToolCall { name: "forecast".into(), arguments: json!({ "city": "Paris" }) },
            Reply::Text("It is sunny in Paris.".into()),
        ])
        .await?;
        let forward = format!("{}-model", ns.name);
        let model_address = ns.cluster().forward_from_host(&forward, model.port)?;
        let _model_forward = Forward::owned(forward);

        let api = Client::new(&base, Some(&create_key(ns.cluster(), &ns.name).await?));
        let vault = api.create("/v1/vaults", json!({ "display_name": "Weather" })).await?;
        let credential = api
            .post(&format!("/v1/vaults/{vault}/credentials"), json!({ "display_name": "weather token",
                "auth": { "type": "static_bearer", "mcp_server_url": mcp_url, "token": token } }))
            .await?;
        assert!(!credential.to_string().contains(&token), "the token is write-only: {credential}");
        let agent = api
            .create("/v1/agents", json!({
                "name": "Forecaster",
                "model": { "id": "e2e-model",
                           "provider": { "type": "openai", "base_url": format!("http://{model_address}") } },
                "mcp_servers": [{ "type": "url", "name": "weather", "url": mcp_url }],
                "tools": [{ "type": "mcp_toolset", "mcp_server_name": "weather",
                            "default_config": { "permission_policy": { "type": "always_allow" } },
                            "configs": [{ "name": "launch", "enabled": false }] }],
            }))
            .await?;
        let env = api
            .create("/v1/environments", json!({
                "name": "box", "config": { "type": "cloud", "networking": { "type": "unrestricted" } } }))
            .await?;
        let session = api
            .create("/v1/sessions", json!({ "agent": agent, "environment_id": env, "vault_ids": [vault] }))
            .await?;

        let mut stream = api.stream(&session, None).await?;
        api.post(&format!("/v1/sessions/{session}/events"), json!({ "events": [
            { "type": "user.message", "content": [{ "type": "text", "text": "What's the weather in Paris?" }] } ] }))
            .await?;
        let turn = read_until(&mut stream, is_end_turn).await?;
        let seen = types(&turn);
        assert!(!seen.contains(&"session.error"), "no MCP error: {turn:?}");

        // Listed: the model was offered the server's enabled tool, not the disabled one.
        let requests = model.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        let offered = tool_names(&requests[0]);
        assert!(offered.iter().any(|t| t == "forecast"), "forecast offered: {offered:?}");
        assert!(!offered.iter().any(|t| t == "launch"), "the disabled tool is left out: {offered:?}");

        // Called: through the harness to the server (with the vault's token, which the server requires).
        let pos = |t: &str| seen.iter().position(|s| *s == t).unwrap_or(usize::MAX);
        assert!(pos("agent.mcp_tool_use") < pos("agent.mcp_tool_result"), "{seen:?}");
        let tool_use = data(&turn[pos("agent.mcp_tool_use")]);
        assert_eq!(tool_use["mcp_server_name"], "weather", "{tool_use}");
        assert_eq!(tool_use["name"], "forecast", "{tool_use}");
        assert_eq!(tool_use["input"], json!({ "city": "Paris" }), "{tool_use}");
        assert_eq!(tool_use["evaluated_permission"], "allow", "{tool_use}");
        let result = data(&turn[pos("agent.mcp_tool_result")]);
        assert_eq!(result["mcp_tool_use_id"], tool_use["id"], "{result}");
        assert_ne!(result["is_error"], true, "{result}");
        assert_eq!(result["content"], json!([{ "type": "text", "text": "Sunny in Paris" }]), "{result}");
        assert_eq!(weather.calls(), ["forecast:Paris"], "the server ran the call once");
        let answers = tool_messages(&requests[1]);
        assert!(
            answers.len() == 1 && answers[0].1.contains("Sunny in Paris"),
            "the model read the server's answer: {answers:?}"
        );
        assert!(seen.contains(&"agent.message"), "{seen:?}");

        // The token is in no event of the session, and in no log line of the harness.
        let history = api.history(&session).await?;
        assert!(history.len() >= turn.len(), "the history holds the turn");
        assert!(!serde_json::to_string(&history)?.contains(&token), "the token is in the session log");
        let logs = ns.cluster().kubectl(&[
            "-n", &ns.name, "logs", "--all-containers", "-l", "app.kubernetes.io/component=harness", "--tail=-1",
        ])?;
        assert!(!logs.is_empty() && !logs.contains(&token), "the token is in the harness's logs");
        Ok(())
    })
    .await
}
