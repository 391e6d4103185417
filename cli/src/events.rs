//! `corral events`: the history (from a point), or the live stream.

use serde_json::Value;

use crate::{
    args::{EventsArgs, Output},
    client::Client,
    error::{CliError, Result},
    output, render,
    resources::id_segment,
    stream::{Follower, Start},
};

/// Where `--after` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// A stream cursor `<millis>-<seq>` (the SSE `id:`, or a list's `next_page`).
    Cursor(String),
    /// An event id.
    Event(String),
}

/// Reads `--after`.
pub fn parse_after(s: &str) -> Result<After> {
    let is_cursor = s.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
    });
    if is_cursor {
        Ok(After::Cursor(s.to_owned()))
    } else if !s.is_empty() && id_segment(s).is_ok() {
        Ok(After::Event(s.to_owned()))
    } else {
        Err(CliError::Input(format!(
            "--after {s:?}: expected an event id (sevt_…) or a stream cursor (<millis>-<seq>)"
        )))
    }
}

fn width() -> usize {
    console::Term::stdout()
        .size_checked()
        .map_or(160, |(_, w)| usize::from(w))
}

fn wanted(types: &[String], event: &Value) -> bool {
    types.is_empty() || types.iter().any(|t| t == render::kind(event))
}

/// Prints one streamed event: a line, or a JSON line.
pub fn print_event(format: Output, event: &Value) -> Result<()> {
    match format {
        f if f.human() => crate::out!("{}", render::event_line(event, width())),
        Output::Name => crate::out!("{}", output::id_of(event)),
        _ => crate::out!(
            "{}",
            serde_json::to_string(event).map_err(|e| CliError::Other(e.to_string()))?
        ),
    }
    Ok(())
}

/// Runs `corral events`.
pub async fn run(client: &Client, format: Output, args: EventsArgs) -> Result<()> {
    let session = id_segment(&args.session)?.to_owned();
    let after = args.after.as_deref().map(parse_after).transpose()?;
    if args.follow {
        follow(client, format, &session, after, args.new, &args.types).await
    } else {
        history(client, format, &session, after, args.limit, &args.types).await
    }
}

async fn history(
    client: &Client,
    format: Output,
    session: &str,
    after: Option<After>,
    limit: Option<usize>,
    types: &[String],
) -> Result<()> {
    let path = format!("/v1/sessions/{session}/events");
    let mut query = vec![("limit".to_owned(), "1000".to_owned())];
    let events = match after {
        Some(After::Event(id)) => {
            // Event ids are not positions: read the history and keep what follows that event.
            let all = client.list(&path, &query, None).await?.data;
            let at = all
                .iter()
                .position(|e| e.get("id").and_then(Value::as_str) == Some(id.as_str()))
                .ok_or_else(|| {
                    CliError::Input(format!("--after {id}: no such event in session {session}"))
                })?;
            all.into_iter()
                .skip(at + 1)
                .filter(|e| wanted(types, e))
                .take(limit.unwrap_or(usize::MAX))
                .collect()
        }
        other => {
            if let Some(After::Cursor(c)) = other {
                query.push(("page".into(), c));
            }
            query.extend(types.iter().map(|t| ("types[]".to_owned(), t.clone())));
            client.list(&path, &query, limit).await?.data
        }
    };
    match format {
        f if f.human() => {
            if events.is_empty() {
                eprintln!("no events");
            }
            let w = width();
            for e in &events {
                crate::out!("{}", render::event_line(e, w));
            }
            Ok(())
        }
        _ => output::data(format, &Value::Array(events)),
    }
}

async fn follow(
    client: &Client,
    format: Output,
    session: &str,
    after: Option<After>,
    new: bool,
    types: &[String],
) -> Result<()> {
    let (start, mut skip_until) = match after {
        Some(After::Cursor(c)) => (Start::After(c), None),
        Some(After::Event(id)) => {
            // Make sure the event exists before replaying up to it.
            let path = format!("/v1/sessions/{session}/events");
            let all = client
                .list(&path, &[("limit".into(), "1000".into())], None)
                .await?
                .data;
            if !all
                .iter()
                .any(|e| e.get("id").and_then(Value::as_str) == Some(id.as_str()))
            {
                return Err(CliError::Input(format!(
                    "--after {id}: no such event in session {session}"
                )));
            }
            (Start::Beginning, Some(id))
        }
        None if new => (Start::Now, None),
        None => (Start::Beginning, None),
    };
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CliError::Other(format!("listening for Ctrl-C: {e}")))?;
    let mut follower = Follower::open(client, session, start).await?;
    let mut last: Option<String> = None;
    loop {
        let item = tokio::select! {
            item = follower.next() => item?,
            _ = sigint.recv() => {
                if let Some(cursor) = &last {
                    eprintln!(
                        "{}",
                        console::style(format!("resume with: corral events {session} --follow --after {cursor}")).dim()
                    );
                }
                return Err(CliError::Interrupted);
            }
        };
        let Some(item) = item else {
            return Ok(());
        };
        if !item.cursor.is_empty() {
            last = Some(item.cursor.clone());
        }
        if let Some(id) = &skip_until {
            if item.event.get("id").and_then(Value::as_str) == Some(id.as_str()) {
                skip_until = None;
            }
            continue;
        }
        if wanted(types, &item.event) {
            print_event(format, &item.event)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_takes_cursors_and_event_ids() {
        assert_eq!(
            parse_after("1714557600120-3").ok(),
            Some(After::Cursor("1714557600120-3".into()))
        );
        assert_eq!(
            parse_after("sevt_01abc").ok(),
            Some(After::Event("sevt_01abc".into()))
        );
        assert!(parse_after("").is_err());
        assert!(parse_after("a/b").is_err());
    }
}
