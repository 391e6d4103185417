//! The real `corral` binary where no gateway is needed: help, completions, the config file, configuration errors
//! and an unreachable gateway.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{Ipv4Addr, TcpListener},
    process::{Command, Output},
};

fn corral(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .env("CORRAL_CONFIG", config)
        .env("NO_COLOR", "1")
        .env_remove("CORRAL_URL")
        .env_remove("CORRAL_API_KEY")
        .output()
        .expect("run corral")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_has_examples_and_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let help = corral(&dir.path().join("c.toml"), &["--help"]);
    assert!(help.status.success());
    let text = out(&help);
    for word in [
        "agents",
        "environments",
        "sessions",
        "send",
        "chat",
        "events",
        "run",
        "config",
        "files",
        "completions",
        "wide",
        "name",
        "Examples:",
        "Exit codes",
    ] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
    let help = corral(&dir.path().join("c.toml"), &["files", "--help"]);
    for word in ["upload", "download", "list", "delete", "rm"] {
        assert!(out(&help).contains(word), "{word} missing from files --help");
    }
    let help = corral(&dir.path().join("c.toml"), &["chat", "--help"]);
    assert!(out(&help).contains("--agent") && out(&help).contains("--env"));
    let help = corral(&dir.path().join("c.toml"), &["events", "--help"]);
    assert!(out(&help).contains("--follow") && out(&help).contains("--after"));
    let wrong = corral(&dir.path().join("c.toml"), &["agents", "frobnicate"]);
    assert_eq!(wrong.status.code(), Some(2));
}

#[test]
fn completions_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = corral(&dir.path().join("c.toml"), &["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", err(&o));
        let script = out(&o);
        assert!(
            script.contains("corral") && script.contains("environments"),
            "{shell}"
        );
    }
}

/// What bash completes after `words` (the last one being typed), with the script `corral completions bash` prints.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("corral.bash");
    let o = corral(&dir.path().join("c.toml"), &["completions", "bash"]);
    std::fs::write(&script, &o.stdout).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = words.join(" ");
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; _corral corral '{}' '{}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let o = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash");
    assert!(o.status.success(), "{}", err(&o));
    out(&o).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_the_new_commands_and_formats() {
    let top = bash_completes(&["corral", ""]);
    assert!(top.iter().any(|w| w == "files"), "{top:?}");
    let files = bash_completes(&["corral", "files", ""]);
    for sub in ["upload", "download", "get", "list", "delete", "rm"] {
        assert!(files.iter().any(|w| w == sub), "{sub} not in {files:?}");
    }
    let formats = bash_completes(&["corral", "sessions", "list", "-o", ""]);
    for f in ["table", "wide", "json", "yaml", "name"] {
        assert!(formats.iter().any(|w| w == f), "{f} not in {formats:?}");
    }
    let chat = bash_completes(&["corral", "chat", "--"]);
    assert!(chat.iter().any(|w| w == "--agent"), "{chat:?}");
}

#[test]
fn config_set_get_unset_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/config.toml");
    assert_eq!(
        out(&corral(&path, &["config", "path"])).trim(),
        path.to_str().unwrap()
    );
    assert!(
        corral(&path, &["config", "set", "url", "http://gw.example:8080/"])
            .status
            .success()
    );
    assert!(
        corral(&path, &["config", "set", "api-key", "sk-corral-0123456789abcdef"])
            .status
            .success()
    );
    assert_eq!(
        out(&corral(&path, &["config", "get", "url"])).trim(),
        "http://gw.example:8080"
    );
    assert_eq!(
        out(&corral(&path, &["config", "get", "api-key"])).trim(),
        "sk-corral-0123456789abcdef"
    );
    let all = out(&corral(&path, &["config", "get"]));
    assert!(all.contains("url = http://gw.example:8080"), "{all}");
    assert!(!all.contains("0123456789abcdef"), "the key is masked: {all}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("api_key = \"sk-corral-0123456789abcdef\""),
        "{text}"
    );

    assert!(corral(&path, &["config", "unset", "api-key"]).status.success());
    let missing = corral(&path, &["config", "get", "api-key"]);
    assert_eq!(missing.status.code(), Some(3));
    // With the URL but no key, a command says how to set the key.
    let o = corral(&path, &["agents", "list"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        err(&o).contains("CORRAL_API_KEY") && err(&o).contains("create-key"),
        "{}",
        err(&o)
    );

    let bad = corral(&path, &["config", "set", "url", "gw.example:8080"]);
    assert_eq!(bad.status.code(), Some(2), "{}", err(&bad));
    assert!(err(&bad).contains("http://"));
    std::fs::write(&path, "url = [\n").unwrap();
    let broken = corral(&path, &["agents", "list"]);
    assert_eq!(broken.status.code(), Some(3));
    assert!(err(&broken).contains("config.toml"), "{}", err(&broken));
}

#[test]
fn an_unreachable_gateway_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["sessions", "list"])
        .env("CORRAL_URL", format!("http://127.0.0.1:{port}"))
        .env("CORRAL_API_KEY", "k")
        .env("CORRAL_CONFIG", dir.path().join("c.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("error: cannot reach the gateway at http://127.0.0.1:"),
        "{e}"
    );
    assert!(out(&o).is_empty());
}
