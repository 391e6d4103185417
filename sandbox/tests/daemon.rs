//! Starting and stopping the daemon binary, and the local sandbox in namespaces.

mod common;

use std::{process::Stdio, time::Duration};

use common::{BINARY, bash_ok};
use corral_sandbox_protocol::{
    Isolation, LocalSandbox, LocalSandboxOptions, SandboxClient, launcher::namespaces_work,
};
use serde_json::json;

#[tokio::test]
async fn the_daemon_refuses_to_start_without_a_usable_token() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    for (args, expected) in [
        (vec![], "no token"),
        (vec![format!("--token-file={}", short.display())], "too short"),
        (
            vec!["--token-file=/nonexistent/token".to_owned()],
            "reading the token file",
        ),
        (vec!["--token-sha256=abc".to_owned()], "64 hex characters"),
    ] {
        let output = tokio::process::Command::new(BINARY)
            .args(&args)
            .arg("--addr=127.0.0.1:0")
            .arg(format!("--workspace={}", dir.path().display()))
            .env_remove("CORRAL_SANDBOX_TOKEN")
            .env_remove("CORRAL_SANDBOX_TOKEN_FILE")
            .env_remove("CORRAL_SANDBOX_TOKEN_SHA256")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Starts the daemon binary configured through the environment (workspace `dir/ws`) with `credential` (a token
/// variable and its value); returns it and the address it listens on.
async fn spawn_daemon(
    dir: &std::path::Path,
    credential: (&str, &str),
) -> std::io::Result<(tokio::process::Child, String)> {
    let addr_file = dir.join("addr");
    let mut child = tokio::process::Command::new(BINARY)
        .env_remove("CORRAL_SANDBOX_TOKEN")
        .env_remove("CORRAL_SANDBOX_TOKEN_FILE")
        .env_remove("CORRAL_SANDBOX_TOKEN_SHA256")
        .env("CORRAL_SANDBOX_ADDR", "127.0.0.1:0")
        .env(credential.0, credential.1)
        .env("CORRAL_SANDBOX_WORKSPACE", dir.join("ws"))
        .env("CORRAL_SANDBOX_ADDR_FILE", &addr_file)
        .env("CORRAL_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let addr = loop {
        if let Ok(addr) = std::fs::read_to_string(&addr_file) {
            break addr;
        }
        if child.try_wait()?.is_some() {
            return Err(std::io::Error::other("the daemon exited"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    Ok((child, addr))
}

/// How a sandbox pod runs the daemon: with only the token's digest. The token works, the digest itself is no
/// token, the identity route tells the digest, and the shell does not see it.
#[tokio::test]
async fn a_daemon_given_only_the_token_digest_accepts_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "fedcba9876543210fedcba9876543210";
    let digest = corral_sandbox_protocol::pod::token_sha256(token);
    let (_child, addr) = spawn_daemon(dir.path(), ("CORRAL_SANDBOX_TOKEN_SHA256", &digest))
        .await
        .unwrap();
    let client = SandboxClient::new(format!("http://{addr}"), token).unwrap();
    let env = bash_ok(&client, "env").await;
    assert!(!env.contains(&digest) && !env.contains("CORRAL_SANDBOX"), "{env}");
    let identity: serde_json::Value = reqwest::get(format!("http://{addr}/v1/identity"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(identity, json!({ "token_sha256": digest }));
    let with_digest = reqwest::Client::new()
        .post(format!("http://{addr}/v1/execute"))
        .bearer_auth(&digest)
        .json(&json!({"tool": "bash", "input": {"command": "true"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_digest.status().as_u16(), 401, "the digest is no token");
}

#[tokio::test]
async fn configuration_from_the_environment_works_and_sigterm_stops_a_busy_daemon_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    let (mut child, addr) = spawn_daemon(dir.path(), ("CORRAL_SANDBOX_TOKEN", token))
        .await
        .unwrap();
    let client = SandboxClient::new(format!("http://{addr}"), token).unwrap();
    assert_eq!(
        bash_ok(&client, "pwd").await,
        format!("{}\n", dir.path().join("ws").display())
    );
    // A long command is running when SIGTERM arrives: the daemon kills it and exits.
    let busy = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .execute("bash", json!({"command": "sleep 120"}), Duration::from_secs(60))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the daemon exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let answered = busy.await.unwrap();
    if let Ok(result) = answered {
        assert!(result.text().contains("killed by a signal"), "{}", result.text());
        assert!(result.is_error, "a command cut off by shutdown did not complete");
    }
}

#[tokio::test]
async fn a_local_sandbox_runs_in_its_own_namespaces_where_the_machine_allows() {
    if !namespaces_work().await {
        eprintln!("unshare does not work here; the plain mode is covered by the other tests");
        return;
    }
    let sandbox = LocalSandbox::start(LocalSandboxOptions {
        binary: Some(BINARY.into()),
        isolation: Isolation::Namespaces,
        ..LocalSandboxOptions::default()
    })
    .await
    .unwrap();
    assert!(sandbox.is_isolated());
    let client = sandbox.client();
    // In its own PID namespace the daemon is process 1 and sees only its own processes.
    assert_eq!(bash_ok(client, "cat /proc/1/comm").await, "corral-sandbox\n");
    let count = bash_ok(client, "ls /proc | grep -c '^[0-9]'").await;
    assert!(count.trim().parse::<u32>().unwrap() < 10, "{count}");
    // As PID 1 the daemon reaps what a killed command leaves behind: no zombies remain.
    let timed_out = common::call(
        client,
        "bash",
        json!({"command": "sleep 300 & sleep 300 & sleep 300", "timeout_ms": 300}),
    )
    .await;
    assert!(timed_out.is_error, "{}", timed_out.text());
    let count_zombies = "cat /proc/[0-9]*/stat 2>/dev/null | grep -c '^[0-9]* ([^)]*) Z' || true";
    let mut zombies = bash_ok(client, count_zombies).await;
    for _ in 0..50 {
        if zombies == "0\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        zombies = bash_ok(client, count_zombies).await;
    }
    assert_eq!(zombies, "0\n", "zombies left in the sandbox");
    // The workspace is shared with the host.
    bash_ok(client, "echo from-inside > note.txt").await;
    assert_eq!(
        std::fs::read_to_string(sandbox.workspace().join("note.txt")).unwrap(),
        "from-inside\n"
    );
    let workspace = sandbox.workspace().to_path_buf();
    sandbox.stop(Duration::from_secs(10)).await.unwrap();
    assert!(!workspace.exists(), "the temporary workspace is removed");
}
