//! The `bash` tool through the real daemon: a persistent shell, timeouts, truncation, restarts.

mod common;

use std::time::Duration;

use common::{bash_ok, call, start, start_with};
use serde_json::json;

#[tokio::test]
async fn a_command_returns_its_output_and_nonzero_exit_codes_are_reported() {
    let sandbox = start().await;
    let client = sandbox.client();
    assert_eq!(bash_ok(client, "echo hi").await, "hi\n");
    assert_eq!(bash_ok(client, "echo out; echo err >&2").await, "out\nerr\n");
    let failed = call(
        client,
        "bash",
        json!({"command": "echo nope; exit_code() { return 3; }; exit_code"}),
    )
    .await;
    assert!(!failed.is_error);
    assert_eq!(failed.text(), "nope\n[exit code 3]");
    assert_eq!(bash_ok(client, "true").await, "(no output)");
}

#[tokio::test]
async fn working_directory_and_exported_variables_carry_over_between_calls() {
    let sandbox = start().await;
    let client = sandbox.client();
    let workspace = sandbox.workspace().display().to_string();
    assert_eq!(bash_ok(client, "pwd").await, format!("{workspace}\n"));
    bash_ok(
        client,
        "mkdir -p sub/dir && cd sub/dir && export GREETING=hello && LOCAL=kept",
    )
    .await;
    assert_eq!(
        bash_ok(
            client,
            "pwd; echo $GREETING $LOCAL; sh -c 'echo child sees $GREETING'"
        )
        .await,
        format!("{workspace}/sub/dir\nhello kept\nchild sees hello\n")
    );
}

#[tokio::test]
async fn commands_cannot_read_the_protocol_stream_and_odd_text_is_passed_intact() {
    let sandbox = start().await;
    let client = sandbox.client();
    // stdin is /dev/null: cat ends at once instead of eating the next command.
    assert_eq!(bash_ok(client, "cat; echo done").await, "done\n");
    let tricky = "printf '%s\\n' \"it's\" 'back\\slash' \"tab\there\" 'ünïcödé' '$HOME'";
    assert_eq!(
        bash_ok(client, tricky).await,
        "it's\nback\\slash\ntab\there\nünïcödé\n$HOME\n"
    );
    let heredoc = "cat <<'EOF'\nline one\n  line two\nEOF";
    assert_eq!(bash_ok(client, heredoc).await, "line one\n  line two\n");
    // Output without a final newline is kept as is.
    assert_eq!(bash_ok(client, "printf abc").await, "abc");
}

#[tokio::test]
async fn a_syntax_error_is_reported_and_the_shell_keeps_working() {
    let sandbox = start().await;
    let client = sandbox.client();
    bash_ok(client, "export KEEP=1").await;
    let result = call(client, "bash", json!({"command": "echo \"unterminated"})).await;
    assert!(result.text().contains("unexpected EOF"), "{}", result.text());
    assert!(result.text().contains("[exit code 2]"), "{}", result.text());
    assert_eq!(bash_ok(client, "echo $KEEP").await, "1\n");
}

#[tokio::test]
async fn a_hanging_command_is_killed_with_its_children_and_the_shell_is_restarted_with_its_state() {
    let sandbox = start().await;
    let client = sandbox.client();
    bash_ok(client, "mkdir -p deep && cd deep && export SURVIVES=yes").await;
    let result = call(
        client,
        "bash",
        json!({"command": "sleep 300 & echo $! > ../bg.pid; echo started; sleep 300", "timeout_ms": 500}),
    )
    .await;
    assert!(result.is_error, "a timeout is an error: {}", result.text());
    let text = result.text();
    assert!(
        text.starts_with("started\n"),
        "output before the timeout is kept: {text}"
    );
    assert!(text.contains("timed out after 500 ms"), "{text}");
    assert!(text.contains("shell was restarted"), "{text}");
    // The backgrounded child was in the command's process group: it was killed, and the daemon (its reaper once
    // its shell died) waited for it, so it is not even a zombie.
    let pid = std::fs::read_to_string(sandbox.workspace().join("bg.pid")).unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    let mut waited = 0;
    while proc_dir.exists() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(
        !proc_dir.exists(),
        "the background process {} is still there",
        pid.trim()
    );
    // The new shell is where the old one was, with its exports.
    let workspace = sandbox.workspace().display().to_string();
    assert_eq!(
        bash_ok(client, "pwd; echo $SURVIVES").await,
        format!("{workspace}/deep\nyes\n")
    );
}

#[tokio::test]
async fn huge_output_is_truncated_in_the_middle_with_a_marker() {
    let sandbox = start_with(&["--max-output-bytes=4096"]).await;
    let client = sandbox.client();
    let text = bash_ok(client, "seq 1 200000").await;
    assert!(text.len() < 6000, "{} bytes came back", text.len());
    assert!(text.starts_with("1\n2\n3\n"), "{}", &text[..50]);
    assert!(text.ends_with("199999\n200000\n"), "{}", &text[text.len() - 50..]);
    assert!(text.contains("output truncated"), "no marker");
    assert!(text.contains("200000 newlines in total"), "no totals");
    // The shell is still in sync after a flood.
    assert_eq!(bash_ok(client, "echo next").await, "next\n");
}

#[tokio::test]
async fn exit_ends_the_shell_and_the_next_command_gets_a_new_one() {
    let sandbox = start().await;
    let client = sandbox.client();
    bash_ok(client, "cd / && export AFTER_EXIT=still").await;
    let result = call(client, "bash", json!({"command": "echo bye; exit 4"})).await;
    let text = result.text();
    assert!(text.starts_with("bye\n"), "{text}");
    assert!(text.contains("the shell exited with status 4"), "{text}");
    assert_eq!(bash_ok(client, "pwd; echo $AFTER_EXIT").await, "/\nstill\n");
}

#[tokio::test]
async fn restart_gives_a_fresh_shell_in_the_workspace() {
    let sandbox = start().await;
    let client = sandbox.client();
    bash_ok(client, "cd / && export GONE=1").await;
    let restarted = call(client, "bash", json!({"restart": true})).await;
    assert!(!restarted.is_error, "{}", restarted.text());
    assert!(restarted.text().contains("fresh shell"), "{}", restarted.text());
    let workspace = sandbox.workspace().display().to_string();
    assert_eq!(
        bash_ok(client, "pwd; echo \"[$GONE]\"").await,
        format!("{workspace}\n[]\n")
    );
    let both = call(
        client,
        "bash",
        json!({"restart": true, "command": "echo after restart"}),
    )
    .await;
    assert!(both.text().ends_with("after restart\n"), "{}", both.text());
}

#[tokio::test]
async fn bad_bash_input_is_a_tool_error() {
    let sandbox = start().await;
    let client = sandbox.client();
    for (input, expected) in [
        (json!({}), "needs a `command`"),
        (json!({"command": "  "}), "needs a `command`"),
        (
            json!({"command": "echo", "timeout_ms": 0}),
            "timeout_ms must be at least 1",
        ),
        (json!({"command": 42}), "invalid input for bash"),
        (
            json!({"command": "echo", "timeout_ms": "soon"}),
            "invalid input for bash",
        ),
        (json!({"command": "echo a\u{0}b"}), "NUL byte"),
    ] {
        let result = call(client, "bash", input.clone()).await;
        assert!(result.is_error, "{input} should fail");
        assert!(result.text().contains(expected), "{input}: {}", result.text());
    }
    assert_eq!(bash_ok(client, "echo fine").await, "fine\n");
}

#[tokio::test]
async fn a_timeout_above_the_maximum_is_lowered_and_said() {
    let sandbox = start_with(&["--max-timeout-ms=1000"]).await;
    let result = call(
        sandbox.client(),
        "bash",
        json!({"command": "echo ok", "timeout_ms": 999_999}),
    )
    .await;
    assert!(!result.is_error);
    assert!(
        result.text().contains("above the maximum 1000"),
        "{}",
        result.text()
    );
    assert!(result.text().ends_with("ok\n"), "{}", result.text());
}

#[tokio::test]
async fn the_token_is_not_visible_to_commands() {
    let sandbox = start().await;
    let text = bash_ok(sandbox.client(), "env | grep -c CORRAL_SANDBOX || true").await;
    assert_eq!(text, "0\n");
}

#[tokio::test]
async fn concurrent_bash_calls_run_one_at_a_time_and_each_gets_its_own_output() {
    let sandbox = start().await;
    let client = sandbox.client().clone();
    let calls = (0..12).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            let text = bash_ok(
                &client,
                &format!("echo start-{i}; sleep 0.0$((RANDOM % 5)); echo end-{i}"),
            )
            .await;
            (i, text)
        })
    });
    for call in calls {
        let (i, text) = call.await.unwrap();
        assert_eq!(text, format!("start-{i}\nend-{i}\n"));
    }
}

#[tokio::test]
async fn a_harness_that_hangs_up_does_not_break_the_shell() {
    let sandbox = start().await;
    let client = sandbox.client();
    let gave_up = client
        .execute(
            "bash",
            json!({"command": "sleep 1; echo late"}),
            Duration::from_millis(200),
        )
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    // The next call waits for the first to finish, then gets only its own output.
    assert_eq!(bash_ok(client, "echo mine").await, "mine\n");
}

#[tokio::test]
async fn a_background_job_holding_the_output_pipe_does_not_hold_the_call() {
    let sandbox = start().await;
    let client = sandbox.client();
    let result = call(
        client,
        "bash",
        json!({"command": "(sleep 300 &); sleep 300 > /dev/null 2>&1 & echo quick", "timeout_ms": 20_000}),
    )
    .await;
    assert!(!result.is_error, "{}", result.text());
    assert_eq!(result.text(), "quick\n");
    assert_eq!(
        bash_ok(client, "printf 'bad \\xff byte'").await,
        "bad \u{fffd} byte"
    );
}
