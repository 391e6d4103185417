//! Agents, environments and sessions: create (flags and files), list, get, archive, delete, in tables and JSON.

use serde_json::{Value, json};

use crate::harness::Gateway;

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn agents_create_list_get_version_and_archive() {
    let gw = Gateway::start();
    let t = gw.tenant();
    assert_eq!(t.run(&["agents", "list"]).stderr.trim(), "no agents");
    assert_eq!(t.run(&["agents", "list", "-o", "json"]).json(), json!([]));

    // From flags.
    let a = t
        .run(&[
            "agents",
            "create",
            "--name",
            "coder",
            "--model",
            "claude-x",
            "--system",
            "You write Rust.",
            "--toolset",
            "-m",
            "team=a",
            "-o",
            "json",
        ])
        .json();
    let a_id = a["id"].as_str().expect("id").to_owned();
    assert_eq!(a["name"], "coder");
    assert_eq!(a["model"]["id"], "claude-x");
    assert_eq!(a["system"], "You write Rust.");
    assert_eq!(a["version"], 1);
    assert_eq!(a["metadata"], json!({ "team": "a" }));
    assert_eq!(a["tools"][0]["type"], "agent_toolset_20260401");

    // From a YAML file in the API's shape, one flag on top.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(
        &file,
        "name: reviewer\nmodel:\n  id: scripted-1\n  provider:\n    type: scripted\n    script_ref: {name: script, key: steps}\ndescription: reads code\n",
    )
    .unwrap();
    let table = t
        .run(&[
            "agents",
            "create",
            "-f",
            file.to_str().unwrap(),
            "--system",
            "Be terse.",
        ])
        .ok()
        .to_owned();
    // `get`-style table: one field per line.
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{table}"))
            .to_owned()
    };
    assert!(line("name").ends_with("reviewer"), "{table}");
    assert!(line("system").ends_with("Be terse."), "{table}");
    assert!(line("model").contains(r#""type":"scripted""#), "{table}");
    let b_id = line("id").split_whitespace().nth(1).unwrap().to_owned();

    // List: a table with a header, newest first; JSON is an array of the API's objects.
    let table = t.run(&["agents", "list"]).ok().to_owned();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "NAME", "MODEL", "VERSION", "AGE"]
    );
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[1].starts_with(&b_id) && rows[1].contains("scripted-1 (scripted)"),
        "{table}"
    );
    assert!(rows[2].starts_with(&a_id) && rows[2].contains("coder"), "{table}");
    assert_eq!(
        ids(&t.run(&["agents", "ls", "-o", "json"]).json()),
        [b_id.as_str(), a_id.as_str()]
    );
    assert_eq!(
        ids(&t.run(&["agents", "list", "--limit", "1", "-o", "json"]).json()),
        [b_id.as_str()]
    );
    let limited = t.run(&["agents", "list", "--limit", "1"]);
    assert!(
        limited.stderr.contains("--all"),
        "a hint that more exist: {}",
        limited.stderr
    );

    // Get, latest and by version; YAML too.
    assert_eq!(t.run(&["agents", "get", &a_id, "-o", "json"]).json(), a);
    assert_eq!(
        t.run(&["agents", "get", &a_id, "--version", "1", "-o", "json"])
            .json()["version"],
        1
    );
    let yaml = t.run(&["agents", "show", &a_id, "-o", "yaml"]).ok().to_owned();
    assert!(yaml.contains(&format!("id: {a_id}")), "{yaml}");
    assert_eq!(
        ids(&t.run(&["agents", "versions", &a_id, "-o", "json"]).json()),
        [a_id.as_str()]
    );

    // Archive: lists hide it unless asked.
    let archived = t.run(&["agents", "archive", &a_id, "-o", "json"]).json();
    assert!(archived["archived_at"].is_string(), "{archived}");
    assert_eq!(
        ids(&t.run(&["agents", "list", "-o", "json"]).json()),
        [b_id.as_str()]
    );
    let table = t.run(&["agents", "list", "--include-archived"]).ok().to_owned();
    let row = table
        .lines()
        .find(|l| l.starts_with(&a_id))
        .expect("archived row");
    assert!(row.ends_with("archived"), "{table}");

    // Agents are archived, not deleted.
    let err = t.run(&["agents", "delete", &a_id]).fails(2).to_owned();
    assert!(err.contains("corral agents archive"), "{err}");
}

#[test]
fn environments_create_list_get_archive_delete() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env.json");
    std::fs::write(
        &file,
        r#"{"name": "rust", "config": {"type": "cloud", "packages": {"apt": ["ripgrep"]}}, "metadata": {"k": "v"}}"#,
    )
    .unwrap();
    let e1 = t
        .run(&[
            "environments",
            "create",
            "-f",
            file.to_str().unwrap(),
            "-o",
            "json",
        ])
        .json();
    assert_eq!(e1["name"], "rust");
    assert_eq!(e1["config"]["packages"]["apt"], json!(["ripgrep"]));
    let e1_id = e1["id"].as_str().unwrap().to_owned();
    let e2 = t
        .run(&[
            "env",
            "create",
            "--name",
            "locked",
            "--allow-host",
            "crates.io",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(e2["config"]["networking"]["type"], "limited");
    assert_eq!(e2["config"]["networking"]["allowed_hosts"], json!(["crates.io"]));
    let e2_id = e2["id"].as_str().unwrap().to_owned();

    let table = t.run(&["environments", "list"]).ok().to_owned();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "NAME", "NETWORKING", "AGE"]
    );
    assert!(
        rows[1].starts_with(&e2_id) && rows[1].contains("limited"),
        "{table}"
    );
    assert!(rows[2].starts_with(&e1_id), "{table}");
    assert_eq!(t.run(&["envs", "get", &e1_id, "-o", "json"]).json(), e1);
    let table = t.run(&["envs", "get", &e1_id]).ok().to_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("name") && l.ends_with("rust")),
        "{table}"
    );

    let archived = t.run(&["envs", "archive", &e1_id, "-o", "json"]).json();
    assert!(archived["archived_at"].is_string());
    assert_eq!(
        ids(&t.run(&["envs", "list", "-o", "json"]).json()),
        [e2_id.as_str()]
    );

    assert_eq!(
        t.run(&["envs", "delete", &e2_id]).ok().trim(),
        format!("deleted environment {e2_id}")
    );
    let deleted = t.run(&["envs", "rm", &e1_id, "-o", "json"]).json();
    assert_eq!(deleted, json!({ "id": e1_id, "type": "environment_deleted" }));
    let err = t.run(&["envs", "get", &e1_id]).fails(5).to_owned();
    assert!(
        err.contains("not_found_error") && err.contains("request-id"),
        "{err}"
    );
    assert_eq!(
        t.run(&["envs", "list", "--include-archived", "-o", "json"])
            .json(),
        json!([])
    );
}

#[test]
fn sessions_create_list_filter_get_archive_delete() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (agent, env, s1) = t.session();
    let other = t
        .run(&[
            "agents", "create", "--name", "other", "--model", "m", "-o", "json",
        ])
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s2 = t
        .run(&[
            "sessions",
            "create",
            "--agent",
            &other,
            "--agent-version",
            "1",
            "--env",
            &env,
            "--title",
            "fix the build",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(s2["title"], "fix the build");
    assert_eq!(s2["status"], "idle");
    let s2_id = s2["id"].as_str().unwrap().to_owned();

    let table = t.run(&["sessions", "list"]).ok().to_owned();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "STATUS", "AGENT", "TITLE", "COST", "AGE"]
    );
    assert!(
        rows[1].starts_with(&s2_id) && rows[1].contains("fix the build"),
        "{table}"
    );
    let table = t.run(&["sessions", "list", "-o", "wide"]).ok().to_owned();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ID",
            "STATUS",
            "AGENT",
            "AGENT",
            "ID",
            "ENVIRONMENT",
            "TITLE",
            "ACTIVE",
            "TOKENS",
            "COST",
            "AGE",
            "CREATED"
        ]
    );
    assert!(
        rows[1].starts_with(&s2_id) && rows[1].contains("fix the build"),
        "{table}"
    );
    assert!(
        rows[1].contains(&format!("{other} v1")) && rows[1].contains("idle"),
        "{table}"
    );
    assert!(rows[2].starts_with(&s1), "{table}");
    assert_eq!(
        ids(&t
            .run(&["sessions", "list", "--agent", &agent, "-o", "json"])
            .json()),
        [s1.as_str()]
    );
    assert_eq!(
        ids(&t
            .run(&["sessions", "list", "--status", "running", "-o", "json"])
            .json()),
        Vec::<String>::new()
    );
    assert_eq!(
        t.run(&["sessions", "get", &s2_id, "-o", "json"]).json()["id"],
        s2_id
    );

    let archived = t.run(&["sessions", "archive", &s1, "-o", "json"]).json();
    assert!(archived["archived_at"].is_string());
    assert_eq!(
        ids(&t.run(&["sessions", "list", "-o", "json"]).json()),
        [s2_id.as_str()]
    );
    assert_eq!(
        t.run(&["session", "delete", &s2_id]).ok().trim(),
        format!("deleted session {s2_id}")
    );
    t.run(&["sessions", "get", &s2_id]).fails(5);
}
