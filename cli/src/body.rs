//! Request bodies of the create commands: a YAML or JSON file in the API's shape, with flags on top.

use std::{io::Read, path::Path};

use serde_json::{Map, Value, json};

use crate::{
    args::{AgentCreateArgs, CreateCommon, EnvironmentCreateArgs, SessionCreateArgs},
    error::{CliError, Result},
};

/// Reads a YAML or JSON file (`-` is standard input) that must hold one object.
pub fn read_file(path: &Path) -> Result<Map<String, Value>> {
    let name = path.display().to_string();
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Input(format!("reading standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("reading {name}: {e}")))?
    };
    parse_object(&text, &name)
}

/// Parses YAML (JSON is YAML too) into an object.
pub fn parse_object(text: &str, name: &str) -> Result<Map<String, Value>> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| CliError::Input(format!("{name}: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Err(CliError::Input(format!("{name} is empty"))),
        other => Err(CliError::Input(format!(
            "{name} must hold one object (the request body), not {}",
            kind(&other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The file's object (or an empty one) with `metadata` flags merged into its `metadata`.
fn base(common: &CreateCommon) -> Result<Map<String, Value>> {
    let mut body = match &common.file {
        Some(path) => read_file(path)?,
        None => Map::new(),
    };
    if !common.metadata.is_empty() {
        let entry = body.entry("metadata").or_insert_with(|| json!({}));
        let Value::Object(meta) = entry else {
            return Err(CliError::Input("metadata in the file must be an object".into()));
        };
        for pair in &common.metadata {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| CliError::Input(format!("--metadata {pair:?}: expected KEY=VALUE")))?;
            if k.is_empty() {
                return Err(CliError::Input(format!("--metadata {pair:?}: the key is empty")));
            }
            meta.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    }
    Ok(body)
}

fn set(body: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        body.insert(key.to_owned(), Value::String(v.clone()));
    }
}

fn require(body: &Map<String, Value>, fields: &[(&str, &str)], what: &str) -> Result<()> {
    for (field, flag) in fields {
        if !body.contains_key(*field) {
            return Err(CliError::Input(format!(
                "{what} needs `{field}`: pass {flag} or give it in the file (-f)"
            )));
        }
    }
    Ok(())
}

/// `text`, or with a leading `@`, the content of that file.
fn text_or_file(s: &str) -> Result<String> {
    match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("reading {path}: {e}")))
        }
        None => Ok(s.to_owned()),
    }
}

/// `{name, key}` of a `SECRET/KEY` flag.
fn secret_ref(flag: &str, s: &str) -> Result<Value> {
    match s.split_once('/') {
        Some((name, key)) if !name.is_empty() && !key.is_empty() && !key.contains('/') => {
            Ok(json!({ "name": name, "key": key }))
        }
        _ => Err(CliError::Input(format!("{flag} {s:?}: expected SECRET/KEY"))),
    }
}

/// The body of `POST /v1/agents`.
pub fn agent(args: &AgentCreateArgs) -> Result<Value> {
    let mut body = base(&args.common)?;
    set(&mut body, "name", args.name.as_ref());
    set(&mut body, "description", args.description.as_ref());
    if let Some(system) = &args.system {
        body.insert("system".into(), Value::String(text_or_file(system)?));
    }
    if let Some(model) = &args.model {
        // Keep a model object from the file (its provider) and only change the id.
        match body.get_mut("model") {
            Some(Value::Object(m)) => {
                m.insert("id".into(), Value::String(model.clone()));
            }
            _ => {
                body.insert("model".into(), Value::String(model.clone()));
            }
        }
    }
    let provider = args
        .provider
        .clone()
        .or_else(|| args.script_ref.as_ref().map(|_| "scripted".to_owned()));
    if provider.is_some() || args.api_key_ref.is_some() {
        let mut model = match body.remove("model") {
            Some(Value::String(id)) => json!({ "id": id }),
            Some(Value::Object(m)) => Value::Object(m),
            Some(_) => {
                return Err(CliError::Input(
                    "model in the file must be a string or an object".into(),
                ));
            }
            None => {
                return Err(CliError::Input(
                    "provider flags need --model (or model in the file)".into(),
                ));
            }
        };
        if let Some(p) = provider {
            model["provider"]["type"] = Value::String(p);
        }
        if let Some(r) = &args.script_ref {
            model["provider"]["script_ref"] = secret_ref("--script-ref", r)?;
        }
        if let Some(r) = &args.api_key_ref {
            model["provider"]["api_key_secret_ref"] = secret_ref("--api-key-ref", r)?;
        }
        body.insert("model".into(), model);
    }
    if args.toolset {
        let tools = body.entry("tools").or_insert_with(|| json!([]));
        let Value::Array(tools) = tools else {
            return Err(CliError::Input("tools in the file must be a list".into()));
        };
        if !tools.iter().any(|t| t["type"] == "agent_toolset_20260401") {
            tools.push(json!({ "type": "agent_toolset_20260401" }));
        }
    }
    require(&body, &[("name", "--name"), ("model", "--model")], "an agent")?;
    Ok(Value::Object(body))
}

/// The body of `POST /v1/environments`.
pub fn environment(args: &EnvironmentCreateArgs) -> Result<Value> {
    let mut body = base(&args.common)?;
    set(&mut body, "name", args.name.as_ref());
    set(&mut body, "description", args.description.as_ref());
    if args.networking.is_some() || !args.allowed_hosts.is_empty() {
        let networking = match (args.networking.as_deref(), args.allowed_hosts.is_empty()) {
            (Some("unrestricted"), false) => {
                return Err(CliError::Input("--allow-host needs --networking limited".into()));
            }
            (Some(kind), true) => json!({ "type": kind }),
            (_, false) => json!({ "type": "limited", "allowed_hosts": args.allowed_hosts }),
            (None, true) => json!({ "type": "unrestricted" }),
        };
        let config = body.entry("config").or_insert_with(|| json!({ "type": "cloud" }));
        if !config.is_object() {
            return Err(CliError::Input("config in the file must be an object".into()));
        }
        config["networking"] = networking;
    }
    require(&body, &[("name", "--name")], "an environment")?;
    Ok(Value::Object(body))
}

/// The body of `POST /v1/sessions`.
pub fn session(args: &SessionCreateArgs) -> Result<Value> {
    let mut body = base(&args.common)?;
    if let Some(agent) = &args.agent {
        let agent = match args.agent_version {
            Some(version) => json!({ "type": "agent", "id": agent, "version": version }),
            None => Value::String(agent.clone()),
        };
        body.insert("agent".into(), agent);
    }
    set(&mut body, "environment_id", args.environment.as_ref());
    set(&mut body, "title", args.title.as_ref());
    require(
        &body,
        &[("agent", "--agent"), ("environment_id", "--env")],
        "a session",
    )?;
    Ok(Value::Object(body))
}

/// The body of `POST /v1/sessions/{id}/events` with one `user.message`.
pub fn user_message(text: &str) -> Value {
    json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": text }] }] })
}

/// The words of a message joined with spaces; a lone `-` reads standard input. Empty messages are refused.
pub fn message_text(words: &[String]) -> Result<String> {
    let text = if words.len() == 1 && words[0] == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Input(format!("reading standard input: {e}")))?;
        s.trim_end_matches('\n').to_owned()
    } else {
        words.join(" ")
    };
    if text.trim().is_empty() {
        return Err(CliError::Input("the message is empty".into()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use super::*;

    fn common(file: Option<PathBuf>, metadata: &[&str]) -> CreateCommon {
        CreateCommon {
            file,
            metadata: metadata.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn agent_args(file: Option<PathBuf>) -> AgentCreateArgs {
        AgentCreateArgs {
            common: common(file, &["team=a"]),
            name: None,
            model: None,
            system: None,
            description: None,
            provider: None,
            script_ref: None,
            api_key_ref: None,
            toolset: false,
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(
            &path,
            "name: from-file\nmodel:\n  id: m1\n  provider: {type: scripted}\nmetadata: {x: y}\n",
        )
        .unwrap();
        let mut args = agent_args(Some(path));
        args.model = Some("m2".into());
        args.toolset = true;
        let body = agent(&args).unwrap();
        assert_eq!(
            body,
            json!({
                "name": "from-file",
                "model": { "id": "m2", "provider": { "type": "scripted" } },
                "metadata": { "x": "y", "team": "a" },
                "tools": [{ "type": "agent_toolset_20260401" }],
            })
        );
    }

    #[test]
    fn missing_fields_and_bad_files_are_clear() {
        let err = agent(&agent_args(None)).unwrap_err().to_string();
        assert!(err.contains("`name`") && err.contains("--name"), "{err}");
        let mut args = agent_args(None);
        args.common.metadata = vec!["novalue".into()];
        assert!(agent(&args).unwrap_err().to_string().contains("KEY=VALUE"));
        assert!(
            parse_object("- a\n- b\n", "f.yaml")
                .unwrap_err()
                .to_string()
                .contains("a list")
        );
        assert!(
            parse_object("", "f.yaml")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(parse_object("{\"a\": ", "f.json").is_err());
        let missing = agent_args(Some("/nonexistent/agent.yaml".into()));
        assert!(
            agent(&missing)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/agent.yaml")
        );
    }

    #[test]
    fn provider_turns_the_model_into_an_object() {
        let mut args = agent_args(None);
        args.name = Some("a".into());
        args.model = Some("claude".into());
        args.provider = Some("scripted".into());
        let body = agent(&args).unwrap();
        assert_eq!(
            body["model"],
            json!({ "id": "claude", "provider": { "type": "scripted" } })
        );
        args.provider = None;
        args.script_ref = Some("scripts/hello".into());
        args.api_key_ref = Some("keys/anthropic".into());
        let body = agent(&args).unwrap();
        assert_eq!(
            body["model"]["provider"],
            json!({ "type": "scripted", "script_ref": { "name": "scripts", "key": "hello" },
                    "api_key_secret_ref": { "name": "keys", "key": "anthropic" } })
        );
        args.script_ref = Some("no-key".into());
        assert!(agent(&args).unwrap_err().to_string().contains("SECRET/KEY"));
    }

    #[test]
    fn environments_and_sessions_from_flags() {
        let args = EnvironmentCreateArgs {
            common: common(None, &[]),
            name: Some("e".into()),
            description: None,
            networking: None,
            allowed_hosts: vec!["crates.io".into()],
        };
        assert_eq!(
            environment(&args).unwrap(),
            json!({ "name": "e", "config": { "type": "cloud", "networking": { "type": "limited", "allowed_hosts": ["crates.io"] } } })
        );
        let args = SessionCreateArgs {
            common: common(None, &[]),
            agent: Some("agent-1".into()),
            agent_version: Some(2),
            environment: Some("env-1".into()),
            title: Some("t".into()),
        };
        assert_eq!(
            session(&args).unwrap(),
            json!({ "agent": { "type": "agent", "id": "agent-1", "version": 2 }, "environment_id": "env-1", "title": "t" })
        );
    }

    #[test]
    fn messages_join_words() {
        assert_eq!(
            message_text(&["hello".into(), "there".into()]).unwrap(),
            "hello there"
        );
        assert!(message_text(&["  ".into()]).is_err());
    }
}
