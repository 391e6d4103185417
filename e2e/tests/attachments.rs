//! Images attached by URL, on the real cluster: a `user.message` names `http://10.201.0.1:<port>/pixel.png`, a
//! server on this host (reached from pods through a relay, as the platform operator's opened internal host). The
//! harness fetches it under the session's environment's network policy: with `unrestricted` networking the model
//! (an OpenAI-compatible stand-in on this host, recording what it is sent) receives the image's bytes; with
//! `limited` networking that does not allow the host it receives a note saying why, never the bytes.
#![cfg(feature = "e2e")]

use base64::Engine as _;
use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{Client, Forward, gateway_url, read_until, tenant},
    model::{ModelServer, Reply},
};
use serde_json::json;

/// A 1×1 PNG.
const PIXEL: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00,
    0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05,
    0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42,
    0x60, 0x82,
];

/// Serves [`PIXEL`] at `/pixel.png` on a free loopback port; the port.
async fn serve_pixel() -> anyhow::Result<u16> {
    use axum::{Router, http::header, routing::get};
    let app = Router::new().route(
        "/pixel.png",
        get(|| async { ([(header::CONTENT_TYPE, "image/png")], PIXEL) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

/// A session in an environment with `networking`, one turn whose message attaches `url`; the model's request.
async fn turn_with_image(
    api: &Client,
    agent: &str,
    name: &str,
    networking: serde_json::Value,
    url: &str,
    model: &ModelServer,
) -> anyhow::Result<String> {
    let env = api
        .create(
            "/v1/environments",
            json!({"name": name, "config": {"type": "cloud", "networking": networking}}),
        )
        .await?;
    let session = api
        .create("/v1/sessions", json!({"agent": agent, "environment_id": env}))
        .await?;
    let before = model.requests().len();
    let mut stream = api.stream(&session, None).await?;
    api.post(
        &format!("/v1/sessions/{session}/events"),
        json!({"events": [{"type": "user.message", "content": [
            {"type": "text", "text": "what is in the picture?"},
            {"type": "image", "source": {"type": "url", "url": url}}
        ]}]}),
    )
    .await?;
    read_until(&mut stream, |e| e.event == "session.status_idle").await?;
    let requests = model.requests();
    anyhow::ensure!(requests.len() > before, "the model was not called");
    Ok(requests[before].to_string())
}

#[tokio::test]
async fn an_image_url_reaches_the_model_only_where_the_environment_lets_the_session_go() -> anyhow::Result<()>
{
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "attach").await?;
    TestNamespace::run(&cluster, "attach", |ns| {
        let base = base.clone();
        async move {
            let api = tenant(&base, ns.cluster(), &ns.name).await?;
            let model = ModelServer::start(vec![Reply::Text("a pixel".into())]).await?;
            let model_forward = Forward::unique_name("attach-model");
            let model_url = format!("http://{}", ns.cluster().forward_from_host(&model_forward, model.port)?);
            let _model_forward = Forward::owned(model_forward);
            let pixel_forward = Forward::unique_name("attach-pixel");
            let address = ns.cluster().forward_from_host(&pixel_forward, serve_pixel().await?)?;
            let _pixel_forward = Forward::owned(pixel_forward);
            let url = format!("http://{address}/pixel.png");
            let agent = api
                .create(
                    "/v1/agents",
                    json!({"name": "looker", "model": {"id": "m", "provider": {"type": "openai", "base_url": model_url}}}),
                )
                .await?;
            let pixel = base64::engine::general_purpose::STANDARD.encode(PIXEL);

            let open = turn_with_image(&api, &agent, "open", json!({"type": "unrestricted"}), &url, &model).await?;
            assert!(
                open.contains(&format!("data:image/png;base64,{pixel}")),
                "the model receives the fetched image: {open}"
            );

            let limited = json!({"type": "limited", "allowed_hosts": ["example.com"]});
            let closed = turn_with_image(&api, &agent, "limited", limited, &url, &model).await?;
            assert!(!closed.contains(&pixel), "a limited environment's session never gets the bytes: {closed}");
            assert!(
                closed.contains("not in this session's environment's allowed hosts"),
                "the model is told why: {closed}"
            );
            Ok(())
        }
    })
    .await
}
