//! `send`, `events` (list, follow, replay from a point) and `chat` against the gateway's log and SSE stream.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Gateway, Tenant};

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

fn text_of(event: &Value) -> &str {
    event["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn send_and_follow_see_the_echo() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (_, _, s) = t.session();
    // A follower of new events only, started before the message.
    let mut follow = t.spawn(&["events", &s, "--follow", "--new", "-o", "json"], false);
    // A human follower of the whole session.
    let mut human = t.spawn(&["events", &s, "-f"], false);
    // Both are attached once the gateway answered; give their first request a moment to land.
    std::thread::sleep(Duration::from_millis(500));

    let sent = t.run(&["send", &s, "hello", "there"]).ok().to_owned();
    let id = sent
        .trim()
        .strip_prefix("sent ")
        .and_then(|r| r.strip_suffix(&format!(" to {s}")))
        .unwrap_or_else(|| panic!("{sent}"))
        .to_owned();
    assert!(id.starts_with("sevt_"), "{sent}");

    let lines = follow.until("the echo", |l| parse(l)["type"] == "user.message");
    let echo = parse(lines.last().unwrap());
    assert_eq!(echo["id"], id.as_str());
    assert_eq!(text_of(&echo), "hello there");
    let lines = human.until("the echo line", |l| l.contains("user.message"));
    let line = lines.last().unwrap();
    assert!(line.starts_with(&id) && line.ends_with("hello there"), "{line}");

    // JSON send answers the stored events.
    let sent = t.run(&["send", &s, "-", "-o", "json"]);
    assert_eq!(sent.status.code(), Some(2), "stdin is empty: {}", sent.stderr);
    let sent = t
        .run_with_input(&["send", &s, "-", "-o", "json"], "from stdin\n")
        .json();
    assert_eq!(text_of(&sent[0]), "from stdin");
    let lines = follow.until("the second echo", |l| parse(l)["type"] == "user.message");
    assert_eq!(parse(lines.last().unwrap())["id"], sent[0]["id"]);

    // `interrupt` appends user.interrupt, which the follower sees too.
    t.run(&["interrupt", &s]).ok();
    follow.until("the interrupt", |l| parse(l)["type"] == "user.interrupt");
}

#[test]
fn events_list_filter_and_replay_from_a_point() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (_, _, s) = t.session();
    assert_eq!(t.run(&["events", &s]).stderr.trim(), "no events");
    let mut ids = Vec::new();
    for word in ["one", "two", "three"] {
        let sent = t.run(&["send", &s, word, "-o", "json"]).json();
        ids.push(sent[0]["id"].as_str().unwrap().to_owned());
    }
    t.run(&["interrupt", &s]).ok();

    let all = t.run(&["events", &s, "-o", "json"]).json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        all.iter().map(text_of).collect::<Vec<_>>(),
        ["one", "two", "three", ""]
    );
    let table = t.run(&["events", &s]).ok().to_owned();
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.lines().next().unwrap().starts_with(&ids[0]), "{table}");

    // Types, limits, and after an event id.
    let interrupts = t
        .run(&["events", &s, "--type", "user.interrupt", "-o", "json"])
        .json();
    assert_eq!(interrupts.as_array().unwrap().len(), 1);
    assert_eq!(interrupts[0]["type"], "user.interrupt");
    let first = t.run(&["events", &s, "--limit", "1", "-o", "json"]).json();
    assert_eq!(first.as_array().unwrap().len(), 1);
    let after = t
        .run(&[
            "events",
            &s,
            "--after",
            &ids[0],
            "-t",
            "user.message",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(
        after.as_array().unwrap().iter().map(text_of).collect::<Vec<_>>(),
        ["two", "three"]
    );
    let err = t
        .run(&["events", &s, "--after", "sevt_nothing"])
        .fails(2)
        .to_owned();
    assert!(err.contains("no such event"), "{err}");
    let err = t
        .run(&["events", &s, "--after", "not/a/cursor"])
        .fails(2)
        .to_owned();
    assert!(err.contains("--after"), "{err}");

    // Follow from an event id: the rest of the history, then live events, in order.
    let mut follow = t.spawn(
        &["events", &s, "--follow", "--after", &ids[1], "-o", "json"],
        false,
    );
    let lines = follow.until("the interrupt", |l| parse(l)["type"] == "user.interrupt");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(text_of(&parse(&lines[0])), "three");
    t.run(&["send", &s, "four"]).ok();
    let lines = follow.until("four", |l| text_of(&parse(l)) == "four");
    assert_eq!(lines.len(), 1, "nothing twice: {lines:?}");
    drop(follow);

    // Ctrl-C on a follower prints the cursor to resume from; resuming there replays exactly what came after.
    let mut follow = t.spawn(&["events", &s, "--follow"], false);
    let lines = follow.until("four", |l| l.ends_with("four"));
    assert_eq!(lines.len(), 5, "the whole history: {lines:?}");
    follow.interrupt();
    let (code, stderr) = follow.wait();
    assert_eq!(code, Some(130), "{stderr}");
    let cursor = stderr
        .split("--after ")
        .nth(1)
        .map(|c| c.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no resume hint: {stderr}"));
    assert!(cursor.contains('-'), "{cursor}");
    t.run(&["send", &s, "five"]).ok();
    t.run(&["send", &s, "six"]).ok();
    let replay = t.run(&["events", &s, "--after", &cursor, "-o", "json"]).json();
    assert_eq!(
        replay.as_array().unwrap().iter().map(text_of).collect::<Vec<_>>(),
        ["five", "six"]
    );
    let mut resumed = t.spawn(
        &["events", &s, "--follow", "--after", &cursor, "-o", "json"],
        false,
    );
    let lines = resumed.until("six", |l| text_of(&parse(l)) == "six");
    assert_eq!(
        lines
            .iter()
            .map(|l| text_of(&parse(l)).to_owned())
            .collect::<Vec<_>>(),
        ["five", "six"]
    );
    assert_eq!(
        resumed.next_line(Duration::from_millis(300)),
        None,
        "nothing more"
    );

    // Deleting the session ends every follower.
    t.run(&["sessions", "delete", &s]).ok();
    let lines = resumed.until("session.deleted", |l| parse(l)["type"] == "session.deleted");
    assert_eq!(lines.len(), 1);
    let (code, stderr) = resumed.wait();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_follower_reconnects_with_last_event_id_and_misses_nothing() {
    let mut gw = Gateway::start();
    let t = gw.tenant();
    let (_, _, s) = t.session();
    t.run(&["send", &s, "one"]).ok();
    let mut follow = t.spawn(&["events", &s, "--follow", "-o", "json"], false);
    follow.until("one", |l| text_of(&parse(l)) == "one");

    // The follower's gateway dies; meanwhile another replica takes two messages.
    gw.stop();
    let replica = gw.replica();
    let via_replica = Tenant {
        url: replica.url.clone(),
        ..t.clone()
    };
    for _ in 0..200 {
        if via_replica.run(&["agents", "list"]).status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    via_replica.run(&["send", &s, "two"]).ok();
    via_replica.run(&["send", &s, "three"]).ok();
    assert_eq!(follow.next_line(Duration::from_millis(200)), None);

    // The gateway comes back: the follower resumes after its last cursor, gets both, once, in order.
    gw.restart();
    let lines = follow.until("three", |l| text_of(&parse(l)) == "three");
    assert_eq!(
        lines
            .iter()
            .map(|l| text_of(&parse(l)).to_owned())
            .collect::<Vec<_>>(),
        ["two", "three"]
    );
    t.run(&["send", &s, "four"]).ok();
    let lines = follow.until("four", |l| text_of(&parse(l)) == "four");
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn chat_from_a_pipe_shows_the_echo_and_ctrl_c_interrupts_then_exits() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (_, _, s) = t.session();
    // No harness runs here: the turn never ends, so the chat keeps waiting after the echo.
    let mut chat = t.spawn(&["chat", &s], true);
    chat.write_line("hello from a pipe");
    let lines = chat.until("the echo", |l| l.contains("hello from a pipe"));
    assert_eq!(lines.last().unwrap(), "you › hello from a pipe");
    let stored = t.run(&["events", &s, "-o", "json"]).json();
    assert_eq!(stored[0]["type"], "user.message");
    assert_eq!(text_of(&stored[0]), "hello from a pipe");

    // The first Ctrl-C sends user.interrupt (and the chat shows its echo); the second exits.
    chat.interrupt();
    chat.until("the interrupt", |l| l == "(interrupted)");
    let stored = t
        .run(&["events", &s, "--type", "user.interrupt", "-o", "json"])
        .json();
    assert_eq!(stored.as_array().unwrap().len(), 1);
    chat.interrupt();
    let (code, stderr) = chat.wait();
    assert_eq!(code, Some(130), "{stderr}");

    // Standard input at its end before any message: the chat ends cleanly.
    let done = t.run_with_input(&["chat", &s], "");
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let err = t.run(&["chat", "sesn-nothing"]).fails(5).to_owned();
    assert!(err.contains("not_found_error"), "{err}");
}

#[test]
fn run_creates_a_session_and_sends_the_prompt() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (agent, env, _) = t.session();
    // Without a harness the turn never ends: read what run printed, then stop it.
    let mut run = t.spawn(
        &[
            "run",
            "--agent",
            &agent,
            "--env",
            &env,
            "--title",
            "from run",
            "count files",
        ],
        false,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let session = loop {
        let list = t.run(&["sessions", "list", "-o", "json"]).json();
        if let Some(s) = list.as_array().unwrap().iter().find(|s| s["title"] == "from run") {
            break s["id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "run made no session");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut events = Value::Null;
    for _ in 0..100 {
        events = t.run(&["events", &session, "-o", "json"]).json();
        if !events.as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(text_of(&events[0]), "count files");
    run.interrupt();
    run.until("the interrupt's echo", |l| l == "(interrupted)");
    run.interrupt();
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains(&format!("session {session}")), "{stderr}");
    let err = t
        .run(&["run", "--agent", "agent-missing", "--env", &env, "hi"])
        .fails(5)
        .to_owned();
    assert!(err.contains("request-id"), "{err}");
}

#[test]
fn a_follower_whose_reader_quits_ends_quietly() {
    use std::io::BufRead;
    let gw = Gateway::start();
    let t = gw.tenant();
    let (_, _, s) = t.session();
    t.run(&["send", &s, "one"]).ok();
    // `corral events -f | head -1`.
    let mut child = t
        .command(&["events", &s, "--follow", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(text_of(&parse(&first)), "one");
    // The reader is gone; the next event cannot be written.
    t.run(&["send", &s, "two"]).ok();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn chat_without_a_session_starts_one_from_flags_or_the_config_defaults() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (agent, env, _) = t.session();

    // Nothing to start a session with: the error says how to set a default.
    let err = t.run_with_input(&["chat"], "hi\n").fails(2).to_owned();
    assert!(err.contains("corral config set agent"), "{err}");

    // Flags: the session is created with them, named on standard error, and the message goes to it.
    let flagged = t.run_with_input(
        &["chat", "--agent", &agent, "--env", &env, "--title", "from flags"],
        "",
    );
    assert_eq!(flagged.status.code(), Some(0), "{}", flagged.stderr);
    let started = flagged
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .unwrap_or_else(|| panic!("no session line in {}", flagged.stderr))
        .to_owned();
    let made = t.run(&["sessions", "get", &started, "-o", "json"]).json();
    assert_eq!(made["title"], "from flags", "{made}");
    assert_eq!(made["environment_id"], env.as_str(), "{made}");

    // The config file's defaults (`corral config set agent|environment`), read when no flag is given.
    t.run(&["config", "set", "agent", &agent]).ok();
    t.run(&["config", "set", "environment", &env]).ok();
    let shown = t.run(&["config", "get"]).ok().to_owned();
    assert!(shown.contains(&format!("agent = {agent}")), "{shown}");
    let mut chat = t.spawn(&["chat"], true);
    chat.write_line("hello from the defaults");
    chat.until("the echo", |l| l.contains("hello from the defaults"));
    let sessions = t.run(&["sessions", "list", "-o", "json"]).json();
    let newest = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(newest, started);
    let stored = t.run(&["events", &newest, "-o", "json"]).json();
    assert_eq!(text_of(&stored[0]), "hello from the defaults");
    chat.interrupt();
    chat.until("the interrupt", |l| l == "(interrupted)");
    chat.interrupt();
    assert_eq!(chat.wait().0, Some(130));
    assert!(
        t.run(&["chat", "sesn-x", "--agent", &agent]).status.code() == Some(2),
        "a session id and --agent conflict"
    );
}

#[test]
fn chat_slash_commands_answer_in_place_and_are_never_sent() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (_, _, s) = t.session();
    let run = t.run_with_input(
        &["chat", &s],
        "/usage\n/cost\n/viewer\n/nope\n/interrupt\n/quit\nnever sent\n",
    );
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    let viewer = format!("{}/ui/#/sessions/{s}", t.url);
    let interrupted = format!("interrupted {s}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [
            "tokens - · cost - · active -",
            "cost -",
            viewer.as_str(),
            interrupted.as_str(),
        ],
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("/nope is not a command"), "{}", run.stderr);
    let stored = t.run(&["events", &s, "-o", "json"]).json();
    let types: Vec<&str> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(!types.contains(&"user.message"), "{types:?}");
    assert!(types.contains(&"user.interrupt"), "{types:?}");
}
