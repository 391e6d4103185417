//! An MCP server end to end on the real cluster, through the installed gateway: a real `rmcp` server on this host
//! behind a bearer token (reached by the harness pod at 10.201.0.1), the token in a vault created through the
//! vaults API and named by the session's `vault_ids`. The harness lists the server's tools into the model's tool
//! set (a disabled one left out), the model calls one, and the session log has `agent.mcp_tool_use` /
//! `agent.mcp_tool_result` with the server's answer; the token is in no event and no log line of the harness or
//! the gateway. A token the server refuses becomes the API's `mcp_authentication_failed_error`, and the turn goes
//! on without the server.
//!
//! The model is a stand-in on this host (`corral_e2e::model`) that records every request the harness sends it.
#![cfg(feature = "e2e")]

use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{Client, Forward, data, gateway_url, is_end_turn, read_until, tenant, types},
    mcp::WeatherServer,
    model::{ModelServer, Reply, tool_messages, tool_names},
};
use eventsource_stream::Event;
use serde_json::json;

/// One session of an agent with the weather MCP server, its token in a vault made through the API, and the
/// stand-in model that calls `forecast` and then answers; all in `ns`.
struct Forecast {
    api: Client,
    session: String,
    weather: WeatherServer,
    model: ModelServer,
    _forwards: [Forward; 2],
}

/// Sets the session up; the server accepts `server_token`, the vault holds `vault_token`.
async fn forecast_session(
    ns: &TestNamespace,
    base: &str,
    server_token: &str,
    vault_token: &str,
) -> anyhow::Result<Forecast> {
    let weather = WeatherServer::start(server_token).await?;
    let mcp_forward = format!("{}-mcp", ns.name);
    let mcp_address = ns.cluster().forward_from_host(&mcp_forward, weather.port)?;
    let mcp_url = format!("http://{mcp_address}/mcp");
    let model = ModelServer::start(vec![
        Reply::ToolCall {
            name: "forecast".into(),
            arguments: json!({ "city": "Paris" }),
        },
        Reply::Text("It is sunny in Paris.".into()),
    ])
    .await?;
    let model_forward = format!("{}-model", ns.name);
    let model_address = ns.cluster().forward_from_host(&model_forward, model.port)?;

    let api = tenant(base, ns.cluster(), &ns.name).await?;
    let vault = api
        .create("/v1/vaults", json!({ "display_name": "Weather" }))
        .await?;
    let credential = api
        .post(
            &format!("/v1/vaults/{vault}/credentials"),
            json!({ "display_name": "weather token",
            "auth": { "type": "static_bearer", "mcp_server_url": mcp_url, "token": vault_token } }),
        )
        .await?;
    assert!(
        !credential.to_string().contains(vault_token),
        "the token is write-only: {credential}"
    );
    let agent = api
        .create(
            "/v1/agents",
            json!({
                "name": "Forecaster",
                "model": { "id": "e2e-model",
                           "provider": { "type": "openai", "base_url": format!("http://{model_address}") } },
                "mcp_servers": [{ "type": "url", "name": "weather", "url": mcp_url }],
                "tools": [{ "type": "mcp_toolset", "mcp_server_name": "weather",
                            "default_config": { "permission_policy": { "type": "always_allow" } },
                            "configs": [{ "name": "launch", "enabled": false }] }],
            }),
        )
        .await?;
    let env = api
        .create(
            "/v1/environments",
            json!({
            "name": "box", "config": { "type": "cloud", "networking": { "type": "unrestricted" } } }),
        )
        .await?;
    let session = api
        .create(
            "/v1/sessions",
            json!({ "agent": agent, "environment_id": env, "vault_ids": [vault] }),
        )
        .await?;
    Ok(Forecast {
        api,
        session,
        weather,
        model,
        _forwards: [Forward::owned(mcp_forward), Forward::owned(model_forward)],
    })
}

impl Forecast {
    /// Asks for the weather and reads the stream to the end of the turn.
    async fn turn(&self) -> anyhow::Result<Vec<Event>> {
        let mut stream = self.api.stream(&self.session, None).await?;
        self.api
            .post(&format!("/v1/sessions/{}/events", self.session), json!({ "events": [
                { "type": "user.message", "content": [{ "type": "text", "text": "What's the weather in Paris?" }] } ] }))
            .await?;
        read_until(&mut stream, is_end_turn).await
    }

    /// Fails when `token` is in any event of the session, or any log line of the namespace's harness or of the
    /// gateway that stored it.
    async fn assert_token_kept(&self, ns: &TestNamespace, token: &str) -> anyhow::Result<()> {
        let history = self.api.history(&self.session).await?;
        assert!(!history.is_empty(), "the session has a history");
        assert!(
            !serde_json::to_string(&history)?.contains(token),
            "the token is in the session log"
        );
        let cluster = ns.cluster();
        for (component, selector) in [
            ("harness", ns.harness_selector()),
            ("gateway", "app.kubernetes.io/component=gateway".to_owned()),
        ] {
            // A harness just started may not be Running, or readable, the moment the turn ends: wait for its lines.
            let logs = corral_e2e::wait::until(
                &format!("the {component} logs something"),
                std::time::Duration::from_secs(20),
                || async {
                    let logs = cluster.running_pod_logs(&cluster.corral_namespace, &selector)?;
                    Ok((!logs.is_empty()).then_some(logs))
                },
            )
            .await?;
            assert!(!logs.contains(token), "the token is in the {component}'s logs");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_and_calls_the_tools_of_its_mcp_server_with_a_vault_token() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "e2e-mcp").await?;
    TestNamespace::run(&cluster, "mcp", |ns| async move {
        let token = format!("e2e-mcp-token-{}", std::process::id());
        let forecast = forecast_session(&ns, &base, &token, &token).await?;
        let (model, weather) = (&forecast.model, &forecast.weather);
        let turn = forecast.turn().await?;
        let seen = types(&turn);
        assert!(!seen.contains(&"session.error"), "no MCP error: {turn:?}");

        // Listed: the model was offered the server's enabled tool, not the disabled one.
        let requests = model.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        let offered = tool_names(&requests[0]);
        assert!(
            offered.iter().any(|t| t == "forecast"),
            "forecast offered: {offered:?}"
        );
        assert!(
            !offered.iter().any(|t| t == "launch"),
            "the disabled tool is left out: {offered:?}"
        );

        // Called: through the harness to the server (with the vault's token, which the server requires).
        let pos = |t: &str| seen.iter().position(|s| *s == t).unwrap_or(usize::MAX);
        assert!(
            pos("agent.mcp_tool_use") < pos("agent.mcp_tool_result"),
            "{seen:?}"
        );
        let tool_use = data(&turn[pos("agent.mcp_tool_use")]);
        assert_eq!(tool_use["mcp_server_name"], "weather", "{tool_use}");
        assert_eq!(tool_use["name"], "forecast", "{tool_use}");
        assert_eq!(tool_use["input"], json!({ "city": "Paris" }), "{tool_use}");
        assert_eq!(tool_use["evaluated_permission"], "allow", "{tool_use}");
        let result = data(&turn[pos("agent.mcp_tool_result")]);
        assert_eq!(result["mcp_tool_use_id"], tool_use["id"], "{result}");
        assert_ne!(result["is_error"], true, "{result}");
        assert_eq!(
            result["content"],
            json!([{ "type": "text", "text": "Sunny in Paris" }]),
            "{result}"
        );
        assert_eq!(
            weather.calls(),
            ["forecast:Paris"],
            "the server ran the call once"
        );
        let answers = tool_messages(&requests[1]);
        assert!(
            answers.len() == 1 && answers[0].1.contains("Sunny in Paris"),
            "the model read the server's answer: {answers:?}"
        );
        assert!(seen.contains(&"agent.message"), "{seen:?}");

        // The token is in no event of the session, and in no log line of the harness or the gateway.
        forecast.assert_token_kept(&ns, &token).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_mcp_server_refuses_is_an_authentication_error_and_the_turn_goes_on() -> anyhow::Result<()>
{
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "e2e-mcp-bad").await?;
    TestNamespace::run(&cluster, "mcp-refused", |ns| async move {
        let token = format!("e2e-mcp-token-{}", std::process::id());
        let stale = format!("{token}-revoked");
        let forecast = forecast_session(&ns, &base, &token, &stale).await?;
        let turn = forecast.turn().await?;
        let errors: Vec<_> = turn
            .iter()
            .filter(|e| e.event == "session.error")
            .map(data)
            .collect();
        assert_eq!(errors.len(), 1, "one error: {:?}", types(&turn));
        let error = &errors[0]["error"];
        assert_eq!(error["type"], "mcp_authentication_failed_error", "{error}");
        assert_eq!(error["mcp_server_name"], "weather", "{error}");
        assert_eq!(error["retry_status"]["type"], "retrying", "{error}");
        let offered = tool_names(&forecast.model.requests()[0]);
        assert!(
            !offered.iter().any(|t| t == "forecast"),
            "no tool of the refusing server offered: {offered:?}"
        );
        assert!(forecast.weather.calls().is_empty(), "the server ran nothing");
        assert!(
            !types(&turn).contains(&"agent.mcp_tool_result"),
            "no MCP result without the server: {:?}",
            types(&turn)
        );
        forecast.assert_token_kept(&ns, &stale).await
    })
    .await
}
