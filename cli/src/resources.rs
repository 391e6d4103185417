//! `corral agents|environments|sessions …`: create, get, list, archive, delete.

use serde_json::Value;

use crate::{
    args::{AgentCommand, EnvironmentCommand, ListArgs, Output, SessionCommand},
    body,
    client::Client,
    error::{CliError, Result},
    output::{self, Column, age, field, time},
};

fn archived(v: &Value) -> String {
    if v.get("archived_at").is_some_and(|a| !a.is_null()) {
        "archived".into()
    } else {
        String::new()
    }
}

fn model(v: &Value) -> String {
    match v.get("model") {
        Some(Value::String(s)) => s.clone(),
        Some(m) => {
            let id = field(m, "/id");
            match m.pointer("/provider/type").and_then(Value::as_str) {
                Some(p) if p != "anthropic" => format!("{id} ({p})"),
                _ => id,
            }
        }
        None => "-".into(),
    }
}

const AGENT_COLUMNS: &[Column] = &[
    Column::id(|v| field(v, "/id")),
    Column::new("NAME", |v| field(v, "/name")),
    Column::new("MODEL", model),
    Column::new("VERSION", |v| field(v, "/version")),
    Column::wide("DESCRIPTION", |v| field(v, "/description")),
    Column::new("AGE", |v| age(v, "/created_at")),
    Column::wide("CREATED", |v| time(v, "/created_at")),
    Column::new("", archived),
];

const ENVIRONMENT_COLUMNS: &[Column] = &[
    Column::id(|v| field(v, "/id")),
    Column::new("NAME", |v| field(v, "/name")),
    Column::new("NETWORKING", |v| field(v, "/config/networking/type")),
    Column::wide("DESCRIPTION", |v| field(v, "/description")),
    Column::new("AGE", |v| age(v, "/created_at")),
    Column::wide("CREATED", |v| time(v, "/created_at")),
    Column::new("", archived),
];

fn agent_of_session(v: &Value) -> String {
    match v.get("agent") {
        Some(Value::String(s)) => s.clone(),
        Some(a) => {
            let id = field(a, "/id");
            match a.get("version").and_then(Value::as_u64) {
                Some(n) => format!("{id} v{n}"),
                None => id,
            }
        }
        None => "-".into(),
    }
}

/// The session's agent by name (its id when the name is unknown).
fn agent_name(v: &Value) -> String {
    match v.pointer("/agent/name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => agent_of_session(v),
    }
}

const SESSION_COLUMNS: &[Column] = &[
    Column::id(|v| field(v, "/id")),
    Column::new("STATUS", |v| field(v, "/status")),
    Column::new("AGENT", agent_name),
    Column::wide("AGENT ID", agent_of_session),
    Column::wide("ENVIRONMENT", |v| field(v, "/environment_id")),
    Column::new("TITLE", |v| field(v, "/title")),
    Column::wide("ACTIVE", crate::usage::active),
    Column::wide("TOKENS", crate::usage::tokens),
    Column::new("COST", crate::usage::cost),
    Column::new("AGE", |v| age(v, "/created_at")),
    Column::wide("CREATED", |v| time(v, "/created_at")),
    Column::new("", archived),
];

/// A path segment: ids go into URLs, so refuse what would change the path.
pub fn id_segment(id: &str) -> Result<&str> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok && id != "." && id != ".." {
        Ok(id)
    } else {
        Err(CliError::Input(format!(
            "{id:?} is not an id (letters, digits, '-', '_' and '.' only)"
        )))
    }
}

fn list_query(args: &ListArgs) -> (Vec<(String, String)>, Option<usize>) {
    let mut q = Vec::new();
    let limit = (!args.all).then_some(args.limit);
    if let Some(limit) = limit {
        q.push(("limit".into(), limit.clamp(1, 100).to_string()));
    } else {
        q.push(("limit".into(), "100".into()));
    }
    if args.include_archived {
        q.push(("include_archived".into(), "true".into()));
    }
    (q, limit)
}

async fn list(
    client: &Client,
    format: Output,
    path: &str,
    query: &[(String, String)],
    limit: Option<usize>,
    columns: &[Column],
    what: &str,
) -> Result<()> {
    let page = client.list(path, query, limit).await?;
    output::list(format, &page.data, columns, &format!("no {what}"))?;
    if page.next.is_some() && format.human() {
        eprintln!(
            "{}",
            console::style(format!("(more {what}: raise --limit or pass --all)")).dim()
        );
    }
    Ok(())
}

/// Says an object was deleted (machines get the API's answer).
pub fn deleted(format: Output, res: &Value, what: &str, id: &str) -> Result<()> {
    if format.human() {
        crate::out!("deleted {what} {id}");
        Ok(())
    } else {
        output::data(format, res)
    }
}

/// Runs an agent command.
pub async fn agents(client: &Client, format: Output, cmd: AgentCommand) -> Result<()> {
    match cmd {
        AgentCommand::Create(args) => {
            let body = body::agent(&args)?;
            output::object(format, &client.post("/v1/agents", &body).await?)
        }
        AgentCommand::Get { id, version } => {
            let query: Vec<(String, String)> = version
                .map(|v| ("version".into(), v.to_string()))
                .into_iter()
                .collect();
            output::object(
                format,
                &client
                    .get(&format!("/v1/agents/{}", id_segment(&id)?), &query)
                    .await?,
            )
        }
        AgentCommand::List(args) => {
            let (q, limit) = list_query(&args);
            list(client, format, "/v1/agents", &q, limit, AGENT_COLUMNS, "agents").await
        }
        AgentCommand::Versions(a) => {
            let path = format!("/v1/agents/{}/versions", id_segment(&a.id)?);
            let q = vec![("limit".to_owned(), "100".to_owned())];
            list(client, format, &path, &q, None, AGENT_COLUMNS, "versions").await
        }
        AgentCommand::Archive(a) => {
            let path = format!("/v1/agents/{}/archive", id_segment(&a.id)?);
            output::object(format, &client.post_empty(&path).await?)
        }
        AgentCommand::Delete(a) => Err(CliError::Input(format!(
            "agents are archived, not deleted (as in the Managed Agents API): corral agents archive {}",
            a.id
        ))),
    }
}

/// Runs an environment command.
pub async fn environments(client: &Client, format: Output, cmd: EnvironmentCommand) -> Result<()> {
    match cmd {
        EnvironmentCommand::Create(args) => {
            let body = body::environment(&args)?;
            output::object(format, &client.post("/v1/environments", &body).await?)
        }
        EnvironmentCommand::Get(a) => {
            let path = format!("/v1/environments/{}", id_segment(&a.id)?);
            output::object(format, &client.get(&path, &[]).await?)
        }
        EnvironmentCommand::List(args) => {
            let (q, limit) = list_query(&args);
            list(
                client,
                format,
                "/v1/environments",
                &q,
                limit,
                ENVIRONMENT_COLUMNS,
                "environments",
            )
            .await
        }
        EnvironmentCommand::Archive(a) => {
            let path = format!("/v1/environments/{}/archive", id_segment(&a.id)?);
            output::object(format, &client.post_empty(&path).await?)
        }
        EnvironmentCommand::Delete(a) => {
            let path = format!("/v1/environments/{}", id_segment(&a.id)?);
            let res = client.delete(&path).await?;
            deleted(format, &res, "environment", &a.id)
        }
    }
}

/// Runs a session command.
pub async fn sessions(client: &Client, format: Output, cmd: SessionCommand) -> Result<()> {
    match cmd {
        SessionCommand::Create(args) => {
            let body = body::session(&args)?;
            output::object(format, &client.post("/v1/sessions", &body).await?)
        }
        SessionCommand::Get(a) => {
            let path = format!("/v1/sessions/{}", id_segment(&a.id)?);
            output::object(format, &client.get(&path, &[]).await?)
        }
        SessionCommand::List(args) => {
            let (mut q, limit) = list_query(&args.list);
            if let Some(agent) = &args.agent {
                q.push(("agent_id".into(), agent.clone()));
            }
            for s in &args.status {
                q.push(("statuses[]".into(), s.clone()));
            }
            list(
                client,
                format,
                "/v1/sessions",
                &q,
                limit,
                SESSION_COLUMNS,
                "sessions",
            )
            .await
        }
        SessionCommand::Archive(a) => {
            let path = format!("/v1/sessions/{}/archive", id_segment(&a.id)?);
            output::object(format, &client.post_empty(&path).await?)
        }
        SessionCommand::Delete(a) => {
            let path = format!("/v1/sessions/{}", id_segment(&a.id)?);
            let res = client.delete(&path).await?;
            deleted(format, &res, "session", &a.id)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_cannot_change_the_path() {
        assert!(id_segment("sesn-01abc_x.1").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(id_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cells_summarise_objects() {
        let agent = json!({ "model": { "id": "m", "provider": { "type": "scripted" } } });
        assert_eq!(model(&agent), "m (scripted)");
        assert_eq!(
            model(&json!({ "model": { "id": "m", "provider": { "type": "anthropic" } } })),
            "m"
        );
        assert_eq!(
            agent_of_session(&json!({ "agent": { "id": "a", "version": 3 } })),
            "a v3"
        );
        assert_eq!(archived(&json!({ "archived_at": null })), "");
        assert_eq!(
            archived(&json!({ "archived_at": "2026-01-01T00:00:00Z" })),
            "archived"
        );
    }
}
