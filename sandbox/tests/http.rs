//! The daemon's HTTP surface: authentication, malformed requests, limits, concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{call, start, start_with};
use corral_sandbox_protocol::{ClientError, SandboxClient, wire::ErrorEnvelope};
use serde_json::{Value, json};

async fn post(base: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/execute"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn error_type(body: &Value) -> String {
    let envelope: ErrorEnvelope = serde_json::from_value(body.clone()).expect("an error envelope");
    assert_eq!(envelope.kind, "error");
    assert!(!envelope.error.message.is_empty());
    envelope.error.kind
}

#[tokio::test]
async fn requests_without_the_right_token_are_refused_and_run_nothing() {
    let sandbox = start().await;
    let base = sandbox.client().base_url().to_owned();
    let marker = sandbox.workspace().join("ran");
    let body =
        json!({"tool": "bash", "input": {"command": format!("touch {}", marker.display())}}).to_string();
    for header in [
        None,
        Some("Bearer wrong-token-wrong-token"),
        Some("Basic abc"),
        Some("Bearer "),
        Some("token"),
    ] {
        let (status, response) = post(&base, header, body.clone()).await;
        assert_eq!(status, 401, "{header:?}");
        assert_eq!(error_type(&response), "authentication_error");
    }
    assert!(!marker.exists(), "a refused request ran its command");
    // A client holding another sandbox's token (its pod's address was reused by this one) checks the daemon's
    // identity first: it never sends that token, and nothing runs.
    let wrong = SandboxClient::new(base, "not-the-token-at-all").unwrap();
    match wrong
        .execute(
            "bash",
            json!({"command": format!("touch {}", marker.display())}),
            Duration::from_secs(5),
        )
        .await
    {
        Err(ClientError::Refused { message, .. }) => {
            assert!(message.contains("not this sandbox's"), "{message}");
        }
        other => panic!("expected a refusal before sending, got {other:?}"),
    }
    assert!(!marker.exists(), "a refused request ran its command");
    sandbox.client().check_identity().await.unwrap();
}

#[tokio::test]
async fn health_is_open_and_info_needs_the_token() {
    let sandbox = start().await;
    let base = sandbox.client().base_url();
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(
        reqwest::get(format!("{base}/v1/info"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let info = sandbox.client().info().await.unwrap();
    assert_eq!(info.workspace, sandbox.workspace().display().to_string());
    assert_eq!(info.tools, ["bash", "edit", "read", "write", "glob", "grep"]);
    sandbox.client().health().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_the_daemon_keeps_serving() {
    let sandbox = start().await;
    let base = sandbox.client().base_url().to_owned();
    let token = format!("Bearer {}", sandbox.token());
    let cases: Vec<(&str, u16, &str, &str)> = vec![
        ("{not json", 400, "invalid_request_error", "must be JSON"),
        ("", 400, "invalid_request_error", "must be JSON"),
        ("[1,2]", 400, "invalid_request_error", "must be JSON"),
        (
            r#"{"input":{}}"#,
            400,
            "invalid_request_error",
            "missing field `tool`",
        ),
        (r#"{"tool":7}"#, 400, "invalid_request_error", "invalid type"),
        (
            r#"{"tool":"rm_rf"}"#,
            400,
            "invalid_request_error",
            "unknown tool \"rm_rf\"",
        ),
    ];
    for (body, status, kind, message) in cases {
        let (got, response) = post(&base, Some(&token), body).await;
        assert_eq!(got, status, "{body}: {response}");
        assert_eq!(error_type(&response), kind, "{body}");
        assert!(
            response["error"]["message"].as_str().unwrap().contains(message),
            "{body}: {response}"
        );
    }
    // Input of the wrong shape is the model's mistake: a tool error it can read.
    let (status, response) = post(&base, Some(&token), r#"{"tool":"read","input":"file.txt"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(response["is_error"], true);
    assert!(
        response["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object")
    );
    // Unknown routes and methods are JSON errors too.
    let missing = reqwest::get(format!("{base}/v2/nothing")).await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(error_type(&missing.json().await.unwrap()), "not_found_error");
    let wrong_method = reqwest::Client::new()
        .get(format!("{base}/v1/execute"))
        .header("authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(
        error_type(&wrong_method.json().await.unwrap()),
        "invalid_request_error"
    );
    assert_eq!(
        common::bash_ok(sandbox.client(), "echo still here").await,
        "still here\n"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let sandbox = start_with(&["--max-body-bytes=1024"]).await;
    let base = sandbox.client().base_url().to_owned();
    let token = format!("Bearer {}", sandbox.token());
    let big =
        json!({"tool": "write", "input": {"file_path": "big", "content": "x".repeat(4096)}}).to_string();
    let (status, response) = post(&base, Some(&token), big).await;
    assert_eq!(status, 413);
    assert_eq!(error_type(&response), "request_too_large");
    assert!(!sandbox.workspace().join("big").exists());
    let small = call(
        sandbox.client(),
        "write",
        json!({"file_path": "small", "content": "ok"}),
    )
    .await;
    assert!(!small.is_error);
}

#[tokio::test]
async fn the_tool_use_id_is_echoed() {
    let sandbox = start().await;
    let request = corral_sandbox_protocol::ExecuteRequest {
        tool: "bash".into(),
        input: json!({"command": "echo x"}),
        tool_use_id: Some("toolu_123".into()),
        fencing_token: None,
        recover: false,
    };
    let result = sandbox
        .client()
        .execute_request(&request, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(result.tool_use_id.as_deref(), Some("toolu_123"));
}

#[tokio::test]
async fn many_concurrent_requests_of_every_kind_are_all_answered() {
    let sandbox = start().await;
    let ws = sandbox.workspace().to_path_buf();
    std::fs::write(ws.join("shared.txt"), "needle\n").unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = sandbox.client().clone();
        tasks.push(tokio::spawn(async move {
            let (tool, input, expected) = match i % 5 {
                0 => ("bash", json!({"command": format!("echo {i}")}), format!("{i}\n")),
                1 => (
                    "write",
                    json!({"file_path": format!("w{i}.txt"), "content": "c"}),
                    "Created".into(),
                ),
                2 => (
                    "read",
                    json!({"file_path": "shared.txt"}),
                    "     1\tneedle\n".into(),
                ),
                3 => (
                    "grep",
                    json!({"pattern": "needle", "path": "shared.txt"}),
                    "shared.txt:1:needle".into(),
                ),
                _ => ("glob", json!({"pattern": "shared.*"}), "shared.txt".into()),
            };
            let result = call(&client, tool, input).await;
            assert!(!result.is_error, "{tool}: {}", result.text());
            assert!(result.text().contains(&expected), "{tool}: {}", result.text());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_sandbox_is_a_client_error() {
    let sandbox = start().await;
    let client = sandbox.client().clone();
    sandbox.stop(Duration::from_secs(5)).await.unwrap();
    match client
        .execute("bash", json!({"command": "true"}), Duration::from_secs(5))
        .await
    {
        Err(ClientError::Refused { .. } | ClientError::Unreachable { .. }) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// A replica that lost its session's lease may still ask for a call after another replica took the session over:
/// the daemon refuses its older fencing token, and the new holder asking again for a call the old one started gets
/// that run's result instead of a second run.
#[tokio::test]
async fn a_taken_over_session_neither_reruns_a_call_nor_lets_the_old_holder_start_one() {
    let sandbox = start().await;
    let base = sandbox.client().base_url().to_owned();
    let token = format!("Bearer {}", sandbox.token());
    let push = json!({"command": "sleep 0.5; echo pushed >> pushes; wc -l < pushes"});
    let body = |fence: u64, recover: bool| {
        json!({"tool": "bash", "input": push.clone(), "tool_use_id": "sevt_push", "fencing_token": fence,
               "recover": recover})
        .to_string()
    };
    let (old_holder, new_holder) = tokio::join!(post(&base, Some(&token), body(3, false)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(&base, Some(&token), body(4, true)).await
    });
    assert_eq!((old_holder.0, new_holder.0), (200, 200));
    assert_eq!(old_holder.1["content"], new_holder.1["content"]);
    assert_eq!(new_holder.1["content"][0]["text"].as_str().unwrap().trim(), "1");
    let pushes = std::fs::read_to_string(sandbox.workspace().join("pushes")).unwrap();
    assert_eq!(pushes, "pushed\n", "the call ran twice");

    let late = json!({"tool": "bash", "input": {"command": "touch late"}, "tool_use_id": "sevt_late", "fencing_token": 3});
    let (status, response) = post(&base, Some(&token), late.to_string()).await;
    assert_eq!(status, 409);
    assert_eq!(error_type(&response), "conflict_error");
    // Recovering a call that never ran here starts nothing.
    let never = json!({"tool": "bash", "input": {"command": "touch never"}, "tool_use_id": "sevt_never",
                       "fencing_token": 5, "recover": true});
    let (status, response) = post(&base, Some(&token), never.to_string()).await;
    assert_eq!(status, 404);
    assert_eq!(error_type(&response), "not_found_error");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!sandbox.workspace().join("late").exists() && !sandbox.workspace().join("never").exists());
}
