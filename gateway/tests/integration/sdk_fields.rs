//! The official Python SDK against this gateway (with a real S3 server for files), without a cluster:
//! e2e/conformance/test_fields.py walks every request field of the SDK's parameter types and checks each is
//! honoured or refused with a 400 naming it; test_files.py uses the SDK's Files API. The SDK's virtual environment
//! comes from e2e/conformance/venv.sh (`CORRAL_SDK_PYTHON` overrides it).

use std::process::Stdio;

use corral_gateway::{ratelimit::Limiter, state::Settings};

use crate::{harness::Gateway, s3::S3Server};

const CONFORMANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/conformance");

#[tokio::test]
async fn every_sdk_request_field_is_honoured_or_refused_by_name() {
    let python = match std::env::var("CORRAL_SDK_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            let out = std::process::Command::new(format!("{CONFORMANCE}/venv.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("e2e/conformance/venv.sh runs");
            assert!(out.status.success(), "venv.sh failed");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        }
    };
    let s3 = S3Server::start().await;
    let settings = Settings {
        files: Some(s3.storage(corral_gateway::files::DEFAULT_MAX_FILE_BYTES)),
        ..Settings::default()
    };
    let gw = Gateway::start_with_settings(Limiter::new(0, 0), settings).await;
    let t = gw.tenant().await;
    let other = gw.tenant().await;
    let status = tokio::process::Command::new(python)
        .args([
            "-m",
            "pytest",
            "test_fields.py",
            "test_files.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "--tb=line",
            "-rf",
        ])
        .current_dir(CONFORMANCE)
        .env("CORRAL_BASE_URL", &gw.url)
        .env("CORRAL_API_KEY", &t.key)
        .env("CORRAL_OTHER_API_KEY", &other.key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .await
        .expect("pytest runs");
    assert!(
        status.success(),
        "test_fields.py or test_files.py failed (its output is above)"
    );
}
