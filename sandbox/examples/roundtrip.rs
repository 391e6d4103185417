//! Measures the round trip of `bash echo hi` through the client to a local sandbox: the median and percentiles of
//! N calls (default 200) after a warm-up.
//!
//! `cargo run -p corral-sandbox --release --example roundtrip -- [calls]` (the daemon binary is found next to the
//! example or through `CORRAL_SANDBOX_BIN`).

use std::time::{Duration, Instant};

use corral_sandbox_protocol::{Isolation, LocalSandbox, LocalSandboxOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200,
    };
    let isolation = match std::env::var("ISOLATION").as_deref() {
        Ok("namespaces") => Isolation::Namespaces,
        Ok("auto") => Isolation::Auto,
        _ => Isolation::Plain,
    };
    let sandbox = LocalSandbox::start(LocalSandboxOptions {
        isolation,
        ..LocalSandboxOptions::default()
    })
    .await?;
    let client = sandbox.client();
    let input = json!({"command": "echo hi"});
    for _ in 0..20 {
        client
            .execute("bash", input.clone(), Duration::from_secs(10))
            .await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let result = client
            .execute("bash", input.clone(), Duration::from_secs(10))
            .await?;
        samples.push(started.elapsed());
        anyhow::ensure!(result.text() == "hi\n", "unexpected output {:?}", result.text());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "bash `echo hi` round trip over {calls} calls (isolated: {}): median {:?}, p90 {:?}, p99 {:?}, min {:?}, max {:?}",
        sandbox.is_isolated(),
        at(0.5),
        at(0.9),
        at(0.99),
        samples[0],
        samples[samples.len() - 1]
    );
    sandbox.stop(Duration::from_secs(5)).await?;
    Ok(())
}
