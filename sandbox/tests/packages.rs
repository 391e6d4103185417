//! `corral-sandbox install-packages` with a real package manager (pip, from a local wheel directory), then the
//! daemon's shell using what it installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::Path, process::Command};

use common::{BINARY, bash_ok, start_with};

/// Writes a pure-Python wheel `hello-corral 1.0` with a `hello-corral` console script into `dir`.
fn build_wheel(dir: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/make_wheel.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(dir)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "building the test wheel");
}

fn install(packages: &str, prefix: &Path, scratch: &Path, wheels: &Path, log: &Path) -> std::process::Output {
    Command::new(BINARY)
        .args(["install-packages", "--packages", packages, "--prefix"])
        .arg(prefix)
        .arg("--scratch")
        .arg(scratch)
        .arg("--termination-log")
        .arg(log)
        // The mirror setting an Environment's sandbox env would carry: here, no index, only the local wheels.
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheels)
        .output()
        .expect("the installer runs")
}

#[tokio::test]
async fn pip_packages_are_installed_into_the_prefix_and_usable_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let (wheels, prefix, scratch, log) = (
        tmp.path().join("wheels"),
        tmp.path().join("prefix"),
        tmp.path().join("scratch"),
        tmp.path().join("log"),
    );
    std::fs::create_dir_all(&wheels).unwrap();
    build_wheel(&wheels);

    let out = install(
        r#"{"pip": ["hello-corral==1.0"]}"#,
        &prefix,
        &scratch,
        &wheels,
        &log,
    );
    assert!(
        out.status.success(),
        "install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(prefix.join("python/hello_corral/__init__.py").is_file());

    let prefix_arg = prefix.display().to_string();
    let sandbox = start_with(&["--packages-dir", &prefix_arg]).await;
    let client = sandbox.client();
    assert_eq!(
        bash_ok(client, "hello-corral").await.trim(),
        "installed by corral",
        "the script is on PATH"
    );
    assert_eq!(
        bash_ok(
            client,
            "python3 -c 'import hello_corral; print(hello_corral.VALUE)'"
        )
        .await
        .trim(),
        "installed by corral",
        "the module is on PYTHONPATH"
    );
    let path = bash_ok(client, "echo $PATH").await;
    assert!(
        path.trim().ends_with(&std::env::var("PATH").unwrap()),
        "the image's PATH still applies: {path}"
    );
}

#[test]
fn a_failed_install_says_which_manager_failed_and_why_in_the_termination_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (wheels, prefix, scratch, log) = (
        tmp.path().join("wheels"),
        tmp.path().join("prefix"),
        tmp.path().join("scratch"),
        tmp.path().join("log"),
    );
    std::fs::create_dir_all(&wheels).unwrap();

    let out = install(
        r#"{"pip": ["no-such-package-corral"]}"#,
        &prefix,
        &scratch,
        &wheels,
        &log,
    );
    assert!(!out.status.success());
    let reason = std::fs::read_to_string(&log).unwrap();
    assert!(reason.starts_with("installing packages.pip failed"), "{reason}");
    assert!(
        reason.contains("no-such-package-corral"),
        "pip's own words are quoted: {reason}"
    );

    let out = install(
        r#"{"pip": ["--index-url=http://elsewhere"]}"#,
        &prefix,
        &scratch,
        &wheels,
        &log,
    );
    assert!(!out.status.success());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("must not start with '-'")
    );

    let out = install("not json", &prefix, &scratch, &wheels, &log);
    assert!(!out.status.success());
    assert!(std::fs::read_to_string(&log).unwrap().contains("not valid JSON"));
}
