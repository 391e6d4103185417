//! Shared helpers of the benchmark binaries: order statistics over measured durations, and reading a session's
//! SSE stream through the installed gateway.

pub mod hops;

use std::time::Duration;

use anyhow::Context as _;
use corral_e2e::gateway::{Client, Events, data};
use corral_e2e::{TestNamespace, wait};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

/// How long a stream may stay silent before a cluster benchmark gives up.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(240);

/// The next SSE event that is not a ping.
pub async fn next_event(stream: &mut Events) -> anyhow::Result<eventsource_stream::Event> {
    loop {
        let event = tokio::time::timeout(STREAM_TIMEOUT, stream.next())
            .await
            .context("no event within the timeout")?
            .context("the stream ended")??;
        if event.event != "ping" {
            return Ok(event);
        }
    }
}

/// Reads the stream until the turn ends; fails when it ends other than with `end_turn`.
pub async fn until_idle(stream: &mut Events) -> anyhow::Result<()> {
    loop {
        let event = next_event(stream).await?;
        if event.event == "session.status_idle" {
            let reason = data(&event)["stop_reason"]["type"].clone();
            anyhow::ensure!(reason == "end_turn", "the turn ended with {reason}");
            return Ok(());
        }
        anyhow::ensure!(event.event != "session.error", "session error: {}", event.data);
    }
}

/// Deletes the session and waits until its sandbox pod is gone, so that rounds do not crowd the node.
pub async fn delete_session(ns: &TestNamespace, api: &Client, session: &str) -> anyhow::Result<()> {
    api.ok(reqwest::Method::DELETE, &format!("/v1/sessions/{session}"), None)
        .await?;
    let pods = ns.api::<Pod>();
    let selector = ListParams::default().labels(&format!("corral.dev/session={session}"));
    wait::until("the session's sandbox pod gone", STREAM_TIMEOUT, || async {
        Ok(pods.list(&selector).await?.items.is_empty().then_some(()))
    })
    .await
}

/// Median and 95th percentile of a set of durations (nearest-rank), or `None` when empty.
pub fn p50_p95(samples: &[Duration]) -> Option<(Duration, Duration)> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Some((rank(0.50), rank(0.95)))
}

/// The `p` quantile (0 < p ≤ 1) of a set of durations (nearest-rank), or `None` when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    Some(sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
        assert_eq!(
            p50_p95(&ms(&[5, 1, 3])),
            Some((Duration::from_millis(3), Duration::from_millis(5)))
        );
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(
            p50_p95(&ms(&hundred)),
            Some((Duration::from_millis(50), Duration::from_millis(95)))
        );
        assert_eq!(p50_p95(&[]), None);
        assert_eq!(percentile(&ms(&hundred), 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
