//! Session outputs: after each tool call in a session's sandbox, the files the agent left under
//! [`OUTPUTS_DIR`](corral_sandbox_protocol::pod::OUTPUTS_DIR) that are new or changed since they were last stored
//! are streamed from the daemon (`GET /v1/outputs/content`) to the gateway
//! (`PUT /internal/v1/namespaces/{ns}/sessions/{session}/outputs`), which keeps them as Files scoped to the
//! session. What is stored already is asked of the gateway, never remembered here (any harness replica may run the
//! session's next call). A file that could not be stored is tried again after the next call; the model is told.
//! A sandbox that is reaped takes its outputs directory with it: what was stored stays a File.

use std::collections::HashMap;
use std::time::Duration;

use corral_sandbox_protocol::SandboxClient;
use futures::TryStreamExt as _;

use super::file_resources::GatewayFiles;

/// How long one call's outputs may take to store, all files together; what is left is tried after the next call.
pub const SAVE_DEADLINE: Duration = Duration::from_secs(300);

/// Stores the session's new and changed outputs; a note for the model when some could not be stored.
pub async fn save(
    gateway: &GatewayFiles,
    http: &reqwest::Client,
    namespace: &str,
    session: &str,
    sandbox: &SandboxClient,
) -> Option<String> {
    match tokio::time::timeout(
        SAVE_DEADLINE,
        save_all(gateway, http, namespace, session, sandbox),
    )
    .await
    {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(_) => Some(format!(
            "storing them took longer than {} s; the rest is stored after the next tool call",
            SAVE_DEADLINE.as_secs()
        )),
    }
    .map(|why| {
        tracing::warn!(%namespace, %session, %why, "session outputs were not all stored");
        format!("Session outputs (/mnt/session/outputs) not all saved: {why}")
    })
}

async fn save_all(
    gateway: &GatewayFiles,
    http: &reqwest::Client,
    namespace: &str,
    session: &str,
    sandbox: &SandboxClient,
) -> Result<(), String> {
    let listing = match sandbox.outputs().await {
        Ok(listing) => listing,
        // A daemon older than session outputs (a pod from before an upgrade) has none to give.
        Err(corral_sandbox_protocol::ClientError::Rejected { status: 404, .. }) => return Ok(()),
        Err(e) => return Err(format!("the sandbox could not list them: {e}")),
    };
    if listing.files.is_empty() {
        return Ok(());
    }
    let stored = stored(gateway, http, namespace, session).await?;
    let mut failed = Vec::new();
    if listing.truncated {
        failed.push(format!(
            "only the first {} regular files (within {} directory levels, with UTF-8 names) are outputs",
            corral_sandbox_protocol::wire::OutputsListing::MAX_FILES,
            corral_sandbox_protocol::wire::OutputsListing::MAX_DEPTH
        ));
    }
    for file in listing
        .files
        .iter()
        .filter(|f| stored.get(&f.path) != Some(&f.fingerprint))
    {
        if let Err(why) = save_one(gateway, http, namespace, session, sandbox, file).await {
            failed.push(format!("{}: {why}", file.path));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// The outputs the gateway holds for the session: path → fingerprint.
async fn stored(
    gateway: &GatewayFiles,
    http: &reqwest::Client,
    namespace: &str,
    session: &str,
) -> Result<HashMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct Stored {
        outputs: HashMap<String, String>,
    }
    let response = gateway
        .get(http, namespace, &["sessions", session, "outputs"])
        .await?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("the gateway answered {status}: {text}"));
    }
    let stored: Stored = response
        .json()
        .await
        .map_err(|e| format!("the gateway's answer: {e}"))?;
    Ok(stored.outputs)
}

async fn save_one(
    gateway: &GatewayFiles,
    http: &reqwest::Client,
    namespace: &str,
    session: &str,
    sandbox: &SandboxClient,
    file: &corral_sandbox_protocol::wire::OutputFile,
) -> Result<(), String> {
    let content = match sandbox.output_content(&file.path, SAVE_DEADLINE).await {
        Ok(content) => content,
        // Removed or replaced by a symlink since it was listed: nothing to store.
        Err(corral_sandbox_protocol::ClientError::Rejected { status: 404, .. }) => return Ok(()),
        Err(e) => return Err(format!("the sandbox could not read it: {e}")),
    };
    // The length goes with the body, so the gateway refuses a file over its limits before any of it is sent.
    let length = content.content_length();
    let body = reqwest::Body::wrap_stream(content.bytes_stream().map_err(std::io::Error::other));
    let response = gateway
        .put(
            http,
            namespace,
            &["sessions", session, "outputs"],
            &[("path", &file.path), ("fingerprint", &file.fingerprint)],
            body,
            length,
        )
        .await?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    Err(format!("{status}: {message}"))
}
