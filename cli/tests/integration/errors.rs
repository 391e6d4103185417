//! What a user sees when something is wrong: a wrong key, bad input, ids that do not exist.

use crate::harness::{Gateway, Tenant};

#[test]
fn a_wrong_key_is_one_clear_line_with_the_request_id_and_exit_4() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let wrong = Tenant {
        key: "sk-corral-wrong".into(),
        ..t.clone()
    };
    for args in [
        &["agents", "list"][..],
        &["sessions", "get", "sesn-x"],
        &["events", "sesn-x", "--follow"],
        &["send", "sesn-x", "hi"],
    ] {
        let run = wrong.run(args);
        let err = run.fails(4);
        let first = err.lines().next().unwrap();
        assert!(
            first.contains("authentication_error") && first.contains("HTTP 401"),
            "{args:?}: {err}"
        );
        assert!(first.contains("request-id "), "{args:?}: {err}");
        assert!(err.contains("hint:") && err.contains("CORRAL_API_KEY"), "{err}");
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let gw = Gateway::start();
    let t = gw.tenant();
    // Missing fields, before any request.
    let err = t.run(&["agents", "create", "--name", "x"]).fails(2).to_owned();
    assert!(err.contains("`model`") && err.contains("--model"), "{err}");
    let err = t.run(&["sessions", "create", "--agent", "a"]).fails(2).to_owned();
    assert!(err.contains("--env"), "{err}");
    // Files that are missing, not YAML, or not an object.
    let err = t
        .run(&["envs", "create", "-f", "/nonexistent.yaml"])
        .fails(2)
        .to_owned();
    assert!(err.contains("/nonexistent.yaml"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: [unclosed\n").unwrap();
    t.run(&["envs", "create", "-f", bad.to_str().unwrap()]).fails(2);
    std::fs::write(&bad, "- a list\n").unwrap();
    let err = t
        .run(&["envs", "create", "-f", bad.to_str().unwrap()])
        .fails(2)
        .to_owned();
    assert!(err.contains("a list"), "{err}");
    let err = t
        .run(&["agents", "create", "--name", "x", "--model", "m", "-m", "novalue"])
        .fails(2)
        .to_owned();
    assert!(err.contains("KEY=VALUE"), "{err}");
    // What the API refuses: its message names the field, with the request id; exit 1.
    let long = "n".repeat(300);
    let err = t
        .run(&["agents", "create", "--name", &long, "--model", "m"])
        .fails(1)
        .to_owned();
    assert!(
        err.contains("name") && err.contains("HTTP 400") && err.contains("request-id"),
        "{err}"
    );
    std::fs::write(&bad, "name: x\nmodel: m\ntools:\n  - type: custom\n").unwrap();
    let err = t
        .run(&["agents", "create", "-f", bad.to_str().unwrap()])
        .fails(1)
        .to_owned();
    assert!(err.contains("tools[0]"), "{err}");
    // Unknown ids are 404s (exit 5); ids that would change the URL never leave the CLI.
    let err = t.run(&["agents", "get", "agent-nothing"]).fails(5).to_owned();
    assert!(err.contains("not_found_error"), "{err}");
    t.run(&["sessions", "delete", "sesn-nothing"]).fails(5);
    let err = t.run(&["sessions", "get", "../agents"]).fails(2).to_owned();
    assert!(err.contains("not an id"), "{err}");
    // No URL at all.
    let out = t
        .command(&["agents", "list"])
        .env_remove("CORRAL_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corral config set url"));
}

#[test]
fn the_config_file_is_used_when_flags_and_environment_are_absent() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (agent, _, _) = t.session();
    let set = |args: &[&str]| {
        let out = t
            .command(args)
            .env_remove("CORRAL_URL")
            .env_remove("CORRAL_API_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    set(&["config", "set", "url", &t.url]);
    set(&["config", "set", "api-key", &t.key]);
    assert_eq!(set(&["config", "get", "url"]).trim(), t.url);
    let shown = set(&["config", "get"]);
    assert!(!shown.contains(&t.key), "the key is masked: {shown}");
    let list = set(&["agents", "list", "-o", "json"]);
    assert!(list.contains(&agent), "{list}");
    // A flag wins over the file.
    let out = t
        .command(&["--api-key", "sk-corral-wrong", "agents", "list"])
        .env_remove("CORRAL_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn rate_limited_requests_are_retried_after_retry_after() {
    // One request per second, no burst beyond one: back-to-back commands hit 429 and wait it out.
    let gw = Gateway::start_with(&["--rate-limit", "1", "--rate-burst", "1"]);
    let t = gw.tenant();
    for _ in 0..3 {
        assert_eq!(
            t.run(&["agents", "list", "-o", "json"]).json(),
            serde_json::json!([])
        );
    }
}
