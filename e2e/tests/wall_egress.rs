//! The egress wall on the real cluster, tried from a sandbox: an Environment that names the cloud metadata
//! address, the API server and Redis in its allowed hosts still cannot reach them through the egress proxy, nor a
//! port the proxy does not open; the host the platform operator opened (`egress.internalHosts`, the test host
//! 10.201.0.1 in hack/e2e.sh) is reached through the same proxy, so the probe itself works. The harness, which runs
//! beside Corral's own parts, likewise refuses a model endpoint (or MCP server) at an internal address a tenant
//! names through the API, and reaches the opened host.
#![cfg(feature = "e2e")]

use std::process::{Child, Command, Stdio};

use corral_e2e::{
    Cluster, TestNamespace,
    cluster::HOST_IP,
    gateway::{Forward, data, gateway_url, read_until, tenant, types},
    model::{ModelServer, Reply},
    sandbox::{bash, client, request_sandbox, wait_ready},
};
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use serde_json::json;

/// A server on this host answering `reached` to every GET.
fn server(port: u16) -> anyhow::Result<Child> {
    let script = r#"
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"reached")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;
    Ok(Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// The ClusterIP of the first Service in `namespace` matching `selector` (a field or label selector).
async fn service_ip(cluster: &Cluster, namespace: &str, params: ListParams) -> anyhow::Result<String> {
    let services: kube::Api<Service> = kube::Api::namespaced(cluster.client.clone(), namespace);
    services
        .list(&params)
        .await?
        .items
        .into_iter()
        .find_map(|s| s.spec?.cluster_ip)
        .ok_or_else(|| anyhow::anyhow!("no Service in {namespace} matches {params:?}"))
}

/// `curl` through the sandbox's proxy variables: the body (or curl's own error) and the HTTP status.
fn fetch(url: &str) -> String {
    format!("curl -sS -k --max-time 10 -w ' status=%{{http_code}}' '{url}' 2>&1 || true")
}

#[tokio::test]
async fn named_internal_hosts_and_closed_ports_stay_closed_through_the_proxy() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut upstream = server(port)?;
    let result = TestNamespace::run(&cluster, "wall-egress", |ns| async move {
        let cluster = ns.cluster();
        let opened = cluster.forward_from_host(&format!("{}-up", ns.name), port)?;
        let api = service_ip(
            cluster,
            "default",
            ListParams::default().fields("metadata.name=kubernetes"),
        )
        .await?;
        let redis = service_ip(
            cluster,
            &cluster.corral_namespace,
            ListParams::default().labels("app.kubernetes.io/component=redis"),
        )
        .await?;
        // Everything a tenant might name: the metadata service, the API server's Service, Redis (with its port),
        // the test host at a port nobody opened, and the opened host itself.
        let allowed = [
            "169.254.169.254".to_owned(),
            api.clone(),
            format!("{redis}:6379"),
            HOST_IP.to_owned(),
            opened.clone(),
        ];
        let list = allowed
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ");
        ns.apply(&corral_e2e::sandbox::manifests(
            &format!("{{config: {{networking: {{type: limited, allowedHosts: [{list}]}}}}}}"),
            "",
        ))?;
        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "sandbox Ready").await?;
        let c = client(&ns, &ready, &format!("{}-a", ns.name)).await?;

        // The permitted position: the operator's opened host answers through the proxy.
        let reply = bash(&c, &fetch(&format!("http://{opened}/"))).await?;
        assert!(
            reply.contains("reached status=200"),
            "the opened host is reachable: {reply}"
        );

        for (what, url) in [
            (
                "the metadata service",
                "http://169.254.169.254/latest/meta-data/".to_owned(),
            ),
            ("the API server over HTTP", format!("http://{api}:443/version")),
            ("the API server over CONNECT", format!("https://{api}/version")),
            ("Redis", format!("http://{redis}:6379/")),
        ] {
            let reply = bash(&c, &fetch(&url)).await?;
            assert!(
                !reply.contains("status=200"),
                "{what} answered through the proxy: {reply}"
            );
            if url.starts_with("http://") {
                assert!(
                    reply.contains("internal or private address"),
                    "the proxy names the internal-address wall for {what}: {reply}"
                );
            } else {
                assert!(
                    reply.contains("403"),
                    "the proxy refuses the tunnel to {what}: {reply}"
                );
            }
        }

        // A port the proxy does not open, on a host the operator did open by name without that port.
        let closed = bash(&c, &fetch(&format!("http://{HOST_IP}:22/"))).await?;
        assert!(closed.contains("port 22 of 10.201.0.1 is closed"), "{closed}");
        let tunnel = bash(&c, &fetch(&format!("https://{HOST_IP}:6379/"))).await?;
        assert!(
            !tunnel.contains("status=200") && tunnel.contains("403"),
            "{tunnel}"
        );
        Ok(())
    })
    .await;
    let _ = upstream.kill();
    result
}

#[tokio::test]
async fn the_harness_refuses_a_model_endpoint_at_an_internal_address() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "wall-harness").await?;
    TestNamespace::run(&cluster, "wall-harness", |ns| {
        let base = base.clone();
        async move {
            let cluster = ns.cluster();
            let redis = service_ip(
                cluster,
                &cluster.corral_namespace,
                ListParams::default().labels("app.kubernetes.io/component=redis"),
            )
            .await?;
            let model = ModelServer::start(vec![Reply::Text("from the opened host".into())]).await?;
            let forward = format!("{}-model", ns.name);
            let opened = cluster.forward_from_host(&forward, model.port)?;
            let _model_forward = Forward::owned(forward);
            let api = tenant(&base, cluster, &ns.name).await?;
            let env = api
                .create(
                    "/v1/environments",
                    json!({"name": "box", "config": {"type": "cloud", "networking": {"type": "unrestricted"}}}),
                )
                .await?;
            // One turn of an agent whose model is at `base_url`: the events of the turn, up to its idle.
            let turn = |name: &'static str, base_url: String| {
                let (api, env) = (&api, &env);
                async move {
                    let agent = api
                        .create(
                            "/v1/agents",
                            json!({"name": name, "model": {"id": "m", "provider": {"type": "openai", "base_url": base_url}}}),
                        )
                        .await?;
                    let session = api
                        .create("/v1/sessions", json!({"agent": agent, "environment_id": env}))
                        .await?;
                    let mut stream = api.stream(&session, None).await?;
                    api.post(
                        &format!("/v1/sessions/{session}/events"),
                        json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]}),
                    )
                    .await?;
                    read_until(&mut stream, |e| e.event == "session.status_idle").await
                }
            };

            for (name, url) in [
                ("metadata", "http://169.254.169.254".to_owned()),
                ("redis", format!("http://{redis}:6379")),
            ] {
                let events = turn(name, url.clone()).await?;
                let errors: Vec<String> = events
                    .iter()
                    .filter(|e| e.event == "session.error")
                    .map(|e| data(e).to_string())
                    .collect();
                assert!(
                    errors.iter().any(|e| e.contains("internal address the harness does not connect to")),
                    "{url}: the harness names its wall ({:?}): {errors:?}",
                    types(&events)
                );
                assert!(!types(&events).contains(&"agent.message"), "{url} answered");
            }

            // The permitted position: the operator's opened host is the model, and it answers.
            let events = turn("opened", format!("http://{opened}")).await?;
            let reply: Vec<String> = events
                .iter()
                .filter(|e| e.event == "agent.message")
                .map(|e| data(e).to_string())
                .collect();
            assert!(
                reply.iter().any(|m| m.contains("from the opened host")),
                "the opened host answers: {:?}",
                types(&events)
            );
            assert_eq!(model.requests().len(), 1, "exactly the opened host was called");
            Ok(())
        }
    })
    .await
}
