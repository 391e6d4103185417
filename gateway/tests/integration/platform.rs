use std::time::Duration;

use corral_gateway::ratelimit::Limiter;
use reqwest::Method;
use serde_json::json;

use crate::harness::{Gateway, Tenant};

#[tokio::test]
async fn requests_without_a_valid_key_get_401() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let msg = gw
        .call(Method::GET, "/v1/agents", None, None)
        .await
        .error(401, "authentication_error");
    assert!(msg.contains("API key"), "{msg}");
    let wrong = Tenant {
        ns: t.ns.clone(),
        key: "sk-corral-wrong".into(),
    };
    gw.call(Method::GET, "/v1/agents", Some(&wrong), None)
        .await
        .error(401, "authentication_error");
    gw.call(Method::GET, "/v1/sessions/sesn-x/events/stream", None, None)
        .await
        .error(401, "authentication_error");
    // x-api-key works as well as Bearer.
    let res = gw
        .http
        .get(format!("{}/v1/agents", gw.url))
        .header("x-api-key", &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(Gateway::read(res).await.ok()["data"], json!([]));
    // A revoked key stops working without a restart.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(gw.kube.clone(), &t.ns);
    let list = secrets
        .list(&kube::api::ListParams::default().labels("corral.dev/api-key=true"))
        .await
        .unwrap();
    for s in list.items {
        secrets
            .delete(&s.metadata.name.unwrap(), &Default::default())
            .await
            .unwrap();
    }
    let mut status = 200;
    for _ in 0..200 {
        status = gw.get("/v1/agents", &t).await.status.as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401);
}

#[tokio::test]
async fn one_tenant_cannot_see_or_touch_another_tenants_objects_or_events() {
    let gw = Gateway::start().await;
    let a = gw.tenant().await;
    let b = gw.tenant().await;
    let (agent, env, session) = gw.session(&a).await;
    gw.post(
        &format!("/v1/sessions/{session}/events"),
        &a,
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "secret" }] }] }),
    )
    .await
    .ok();

    for path in [
        format!("/v1/agents/{agent}"),
        format!("/v1/agents/{agent}/versions"),
        format!("/v1/environments/{env}"),
        format!("/v1/sessions/{session}"),
        format!("/v1/sessions/{session}/events"),
        format!("/v1/sessions/{session}/events/stream"),
    ] {
        gw.get(&path, &b).await.error(404, "not_found_error");
    }
    gw.post(
        &format!("/v1/agents/{agent}"),
        &b,
        json!({ "system": "mine now" }),
    )
    .await
    .error(404, "not_found_error");
    gw.post(&format!("/v1/agents/{agent}/archive"), &b, json!(null))
        .await
        .error(404, "not_found_error");
    gw.post(&format!("/v1/environments/{env}"), &b, json!({ "name": "x" }))
        .await
        .error(404, "not_found_error");
    gw.delete(&format!("/v1/environments/{env}"), &b)
        .await
        .error(404, "not_found_error");
    gw.post(&format!("/v1/sessions/{session}"), &b, json!({ "title": "x" }))
        .await
        .error(404, "not_found_error");
    gw.post(&format!("/v1/sessions/{session}/archive"), &b, json!(null))
        .await
        .error(404, "not_found_error");
    gw.post(
        &format!("/v1/sessions/{session}/events"),
        &b,
        json!({ "events": [{ "type": "user.interrupt" }] }),
    )
    .await
    .error(404, "not_found_error");
    gw.delete(&format!("/v1/sessions/{session}"), &b)
        .await
        .error(404, "not_found_error");
    gw.post(
        "/v1/sessions",
        &b,
        json!({ "agent": agent, "environment_id": env }),
    )
    .await
    .error(404, "not_found_error");
    for list in ["/v1/agents", "/v1/environments", "/v1/sessions"] {
        assert_eq!(gw.get(list, &b).await.ok()["data"], json!([]), "{list}");
    }
    // Tenant A still has everything, untouched.
    let events = gw.get(&format!("/v1/sessions/{session}/events"), &a).await.ok();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        gw.get(&format!("/v1/agents/{agent}"), &a).await.ok()["version"],
        1
    );
}

#[tokio::test]
async fn keys_over_their_rate_get_429_with_retry_after() {
    let gw = Gateway::start_with(Limiter::new(1, 3), Duration::from_secs(15)).await;
    let a = gw.tenant().await;
    let b = gw.tenant().await;
    let mut limited = None;
    for _ in 0..10 {
        let res = gw.get("/v1/agents", &a).await;
        if res.status == 429 {
            limited = Some(res);
            break;
        }
    }
    let res = limited.expect("the burst runs out");
    res.error(429, "rate_limit_error");
    let retry: u64 = res.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_ne!(
        gw.get("/v1/agents", &b).await.status,
        429,
        "another key has its own bucket"
    );
    let metrics = reqwest::get(format!("{}/metrics", gw.metrics_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("corral_gateway_rate_limited_total"), "{metrics}");
}

#[tokio::test]
async fn openapi_health_metrics_and_unknown_routes() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let res = gw
        .http
        .get(format!("{}/v1/openapi.yaml", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let yaml = res.text().await.unwrap();
    assert!(
        yaml.contains("/v1/sessions/{session_id}/events/stream"),
        "the description covers the stream"
    );
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            gw.http
                .get(format!("{}{path}", gw.url))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    gw.get("/v1/agents", &t).await.ok();
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.metrics_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"corral_gateway_http_requests_total{route="/v1/agents",method="GET",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("corral_gateway_sse_clients"), "{metrics}");
    // The API port does not serve them.
    let res = gw.http.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // What the SDK sends: a JSON content type with an empty body on archive and delete, beta and version headers.
    let (_, env, session) = gw.session(&t).await;
    for (method, path) in [
        (Method::POST, format!("/v1/sessions/{session}/archive")),
        (Method::POST, format!("/v1/environments/{env}/archive")),
        (Method::DELETE, format!("/v1/sessions/{session}")),
    ] {
        let res = gw
            .http
            .request(method, format!("{}{path}", gw.url))
            .bearer_auth(&t.key)
            .header("content-type", "application/json")
            .header("content-length", "0")
            .header("anthropic-version", "2026-10-21")
            .header("anthropic-beta", "foo-2026,managed-agents-2026-04-01")
            .send()
            .await
            .unwrap();
        Gateway::read(res).await.ok();
    }
    gw.get("/v1/nothing-here", &t).await.error(404, "not_found_error");
    gw.call(Method::PUT, "/v1/agents", Some(&t), Some(json!({})))
        .await
        .error(405, "invalid_request_error");
    let big = "x".repeat(40 << 20);
    let res = gw
        .http
        .post(format!("{}/v1/agents", gw.url))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    Gateway::read(res).await.error(413, "invalid_request_error");
}

#[tokio::test]
async fn the_create_key_command_prints_a_key_that_works() {
    let gw = Gateway::start().await;
    let ns = format!("gw-it-cli-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let kubeconfig = std::env::var("KUBECONFIG")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/.state/kubeconfig").to_owned());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral-gateway"))
        .args([
            "--log-format",
            "text",
            "create-key",
            "--namespace",
            &ns,
            "--name",
            "cli-key",
        ])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("sk-corral-"), "{key}");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(gw.kube.clone(), &ns);
    let secret = secrets.get("cli-key").await.unwrap();
    assert_eq!(secret.metadata.labels.unwrap()["corral.dev/api-key"], "true");
    let t = Tenant { ns, key };
    let mut status = 0;
    for _ in 0..200 {
        status = gw.get("/v1/agents", &t).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status, 200,
        "a key added while the gateway runs works without a restart"
    );
}

#[tokio::test]
async fn requests_failed_by_the_session_log_are_counted() {
    let mut gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    drop(gw.redis.take());
    let reply = gw
        .post(
            &format!("/v1/sessions/{session}/events"),
            &t,
            json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
        )
        .await;
    assert!(reply.status.is_server_error(), "{}", reply.body);
    let metrics = reqwest::get(format!("{}/metrics", gw.metrics_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("corral_gateway_redis_errors_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_trace_viewer_is_served_without_a_key_and_locked_down() {
    let gw = Gateway::start().await;
    let page = reqwest::get(format!("{}/ui/", gw.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<ol id="timeline">"#), "{html}");
    let js = reqwest::get(format!("{}/ui/app.js", gw.url)).await.unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = js.text().await.unwrap();
    assert!(
        js.contains(r#""x-api-key": key()"#),
        "the page sends the key as a header"
    );
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.headers()["location"], "/ui/");
    // The data stays behind the key.
    assert_eq!(
        reqwest::get(format!("{}/v1/sessions", gw.url))
            .await
            .unwrap()
            .status(),
        401
    );
}
