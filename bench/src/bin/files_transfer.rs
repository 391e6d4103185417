//! The Files API and file resources on the real cluster, through the installed gateway (KUBECONFIG names a cluster
//! with Corral installed and its bundled object store; `E2E_INSTALL_ONLY=1 hack/e2e.sh` leaves one):
//!
//! 1. upload and download throughput of one `SIZE` MiB file, streamed both ways (`POST /v1/files` multipart,
//!    `GET /v1/files/{id}/content`);
//! 2. what a `SIZE` MiB `file` resource adds to the first tool call of a new session: `agent.tool_use` →
//!    `agent.tool_result` of one `bash` call, with the file given at create and without, alternately (lazy sandboxes
//!    both times, so both include the pod's start; the difference is the file's copy into the sandbox).
//!
//! `cargo run -p corral-bench --bin files_transfer -- [SIZE_MIB] [ROUNDS]` (defaults 100, 3).

use std::time::{Duration, Instant};

use corral_bench::{delete_session, next_event, p50_p95, until_idle};
use corral_e2e::gateway::{Client, data, gateway_url, tenant};
use corral_e2e::{Cluster, TestNamespace};
use futures::StreamExt as _;
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(600);

/// A scripted agent whose every turn is one `bash` call printing the resource's size (or `none`), then a word.
fn manifests(rounds: usize) -> String {
    let turn = "      - content: [{tool_use: {name: bash, input: {command: \"if test -f /mnt/session/uploads/big.bin; then wc -c < /mnt/session/uploads/big.bin; else echo none; fi\"}}}]\n      - content: [{text: [\"Done.\"]}]\n";
    let turns: String = (0..rounds).map(|_| turn).collect();
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: scripts}}
data:
  size.yaml: |
    turns:
{turns}
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {{name: sizer}}
spec:
  model: {{id: scripted, provider: {{type: scripted, scriptRef: {{name: scripts, key: size.yaml}}}}}}
  tools: [{{type: agent_toolset_20260401}}]
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {{name: lazy}}
"#
    )
}

/// `size` bytes of a repeating pattern, in 1 MiB chunks, never held whole.
fn body(size: u64) -> reqwest::Body {
    let chunk = bytes::Bytes::from((0..MIB).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let chunks = size.div_ceil(MIB);
    let stream = futures::stream::iter((0..chunks).map(move |i| {
        let len = (size - i * MIB).min(MIB) as usize;
        Ok::<_, std::io::Error>(chunk.slice(..len))
    }));
    reqwest::Body::wrap_stream(stream)
}

/// Uploads `size` bytes as `big.bin`; the file's id and the time the upload took.
async fn upload(api: &Client, size: u64) -> anyhow::Result<(String, Duration)> {
    let part = reqwest::multipart::Part::stream_with_length(body(size), size)
        .file_name("big.bin")
        .mime_str("application/octet-stream")?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let start = Instant::now();
    let response = api
        .request(reqwest::Method::POST, "/v1/files")
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    let file: Value = response.json().await?;
    let took = start.elapsed();
    anyhow::ensure!(status.is_success(), "upload: {status} {file}");
    anyhow::ensure!(file["size_bytes"] == size, "stored {file}");
    Ok((file["id"].as_str().unwrap_or_default().to_owned(), took))
}

/// Downloads the file, counting its bytes; the time it took.
async fn download(api: &Client, id: &str, size: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let response = api
        .request(reqwest::Method::GET, &format!("/v1/files/{id}/content"))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "download: {}", response.status());
    let mut stream = response.bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        got += chunk?.len() as u64;
    }
    let took = start.elapsed();
    anyhow::ensure!(got == size, "downloaded {got} of {size} bytes");
    Ok(took)
}

/// A new session (with the file as a resource when given), one turn; the time from its `agent.tool_use` to its
/// `agent.tool_result`, and the result's text.
async fn first_tool_call(api: &Client, file: Option<&str>) -> anyhow::Result<(Duration, String)> {
    let mut create = json!({ "agent": "sizer", "environment_id": "lazy" });
    if let Some(id) = file {
        create["resources"] =
            json!([{ "type": "file", "file_id": id, "mount_path": "/mnt/session/uploads/big.bin" }]);
    }
    let session = api.create("/v1/sessions", create).await?;
    let mut stream = api.stream(&session, None).await?;
    api.post(
        &format!("/v1/sessions/{session}/events"),
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "size?" }] }] }),
    )
    .await?;
    let mut asked = None;
    let measured = loop {
        let event = next_event(&mut stream).await?;
        match event.event.as_str() {
            "agent.tool_use" => asked = Some(Instant::now()),
            "agent.tool_result" => {
                let took = asked.map(|a| a.elapsed()).unwrap_or_default();
                let text = data(&event)["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                break (took, text);
            }
            "session.status_idle" | "session.error" => {
                anyhow::bail!("the turn ended without a tool result: {}", event.data)
            }
            _ => {}
        }
    };
    until_idle(&mut stream).await?;
    Ok((measured.0, format!("{session} {}", measured.1.trim())))
}

fn rate(size: u64, took: Duration) -> f64 {
    size as f64 / MIB as f64 / took.as_secs_f64()
}

fn arg(n: usize, default: u64) -> anyhow::Result<u64> {
    Ok(std::env::args()
        .nth(n)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (size_mib, rounds) = (arg(1, 100)?, arg(2, 3)? as usize);
    let size = size_mib * MIB;
    let cluster = Cluster::connect().await?;
    let (base, _forward) = gateway_url(&cluster, "bench-files").await?;
    TestNamespace::run(&cluster, "bench-files", |ns| async move {
        ns.apply(&manifests(rounds * 2 + 1))?;
        let api = tenant(&base, ns.cluster(), &ns.name).await?;
        ns.harness_available(TIMEOUT).await?;

        // 1. Throughput, one file per round.
        let (mut up, mut down) = (vec![], vec![]);
        let mut kept = None;
        for _ in 0..rounds {
            let (id, took) = upload(&api, size).await?;
            up.push(took);
            down.push(download(&api, &id, size).await?);
            if let Some(old) = kept.replace(id) {
                api.ok(reqwest::Method::DELETE, &format!("/v1/files/{old}"), None).await?;
            }
        }
        let (up50, _) = p50_p95(&up).unwrap_or_default();
        let (down50, _) = p50_p95(&down).unwrap_or_default();
        println!("upload of {size_mib} MiB over {rounds} files: p50 {:.1}s = {:.1} MiB/s", up50.as_secs_f64(), rate(size, up50));
        println!("download of {size_mib} MiB over {rounds} files: p50 {:.1}s = {:.1} MiB/s", down50.as_secs_f64(), rate(size, down50));

        // 2. The first tool call of a new session, without and with the file, alternately.
        let file = kept.unwrap_or_default();
        let (mut without, mut with) = (vec![], vec![]);
        // One session first, not counted: it loads the agent and warms the harness's connections.
        let (_, warm) = first_tool_call(&api, None).await?;
        delete_session(&ns, &api, warm.split(' ').next().unwrap_or_default()).await?;
        for _ in 0..rounds {
            for given in [None, Some(file.as_str())] {
                let (took, out) = first_tool_call(&api, given).await?;
                let (session, said) = out.split_once(' ').unwrap_or_default();
                let expected = if given.is_some() { size.to_string() } else { "none".to_owned() };
                anyhow::ensure!(said == expected, "the tool saw {said:?}, expected {expected}");
                if given.is_some() { with.push(took) } else { without.push(took) }
                delete_session(&ns, &api, session).await?;
            }
        }
        let (w50, _) = p50_p95(&without).unwrap_or_default();
        let (f50, _) = p50_p95(&with).unwrap_or_default();
        println!(
            "first tool call of a new session over {rounds} sessions each: without the file p50 {:.0}ms, with a {size_mib} MiB file resource p50 {:.0}ms, added {:.0}ms",
            w50.as_secs_f64() * 1000.0,
            f50.as_secs_f64() * 1000.0,
            f50.saturating_sub(w50).as_secs_f64() * 1000.0
        );
        api.ok(reqwest::Method::DELETE, &format!("/v1/files/{file}"), None).await?;
        Ok(())
    })
    .await
}
