//! `chat`'s slash commands: `/interrupt`, `/usage`, `/cost`, `/viewer`, `/help`, `/quit`. A line starting with `//`
//! is sent as a message starting with `/`.

use serde_json::{Value, json};

use crate::{
    client::Client,
    error::{CliError, Result},
    usage,
};

/// What a line typed in `chat` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// A message for the agent.
    Message(String),
    /// A slash command.
    Command(Slash),
}

/// The slash commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slash {
    /// Stop the agent's current turn (`user.interrupt`).
    Interrupt,
    /// The session's tokens, cost and active time.
    Usage,
    /// The session's estimated cost.
    Cost,
    /// The trace viewer's URL for the session.
    Viewer,
    /// The commands.
    Help,
    /// Leave the chat.
    Quit,
    /// A command that does not exist.
    Unknown(String),
}

/// The help text of the slash commands.
pub const HELP: &str = "\
/interrupt  stop the agent's current turn
/usage      tokens, cost and active time of the session
/cost       the session's estimated cost
/viewer     the trace viewer's URL for this session
/quit       leave (the session stays)
//text      send a message that starts with /";

/// Reads a typed line.
pub fn parse(line: &str) -> Typed {
    let trimmed = line.trim();
    if let Some(rest) = trimmed.strip_prefix("//") {
        return Typed::Message(format!("/{rest}"));
    }
    let Some(name) = trimmed.strip_prefix('/') else {
        return Typed::Message(line.to_owned());
    };
    Typed::Command(match name.split_whitespace().next().unwrap_or("") {
        "interrupt" | "stop" => Slash::Interrupt,
        "usage" => Slash::Usage,
        "cost" => Slash::Cost,
        "viewer" | "trace" => Slash::Viewer,
        "help" | "?" => Slash::Help,
        "quit" | "exit" | "q" => Slash::Quit,
        other => Slash::Unknown(other.to_owned()),
    })
}

/// The trace viewer's page of `session` on the gateway at `base`.
pub fn viewer_url(base: &str, session: &str) -> String {
    format!("{base}/ui/#/sessions/{session}")
}

/// Runs a slash command (all but `/quit`, which the chat loop handles) and prints its answer.
pub async fn run(client: &Client, session: &str, cmd: &Slash) -> Result<()> {
    match cmd {
        Slash::Interrupt => {
            client
                .post(
                    &format!("/v1/sessions/{session}/events"),
                    &json!({ "events": [{ "type": "user.interrupt" }] }),
                )
                .await?;
            crate::out!("interrupted {session}");
        }
        Slash::Usage | Slash::Cost => {
            let info: Value = client.get(&format!("/v1/sessions/{session}"), &[]).await?;
            if *cmd == Slash::Cost {
                crate::out!("cost {}", usage::cost(&info));
            } else {
                crate::out!(
                    "tokens {} · cost {} · active {}",
                    usage::tokens(&info),
                    usage::cost(&info),
                    usage::active(&info)
                );
            }
        }
        Slash::Viewer => crate::out!("{}", viewer_url(client.base(), session)),
        Slash::Help => crate::out!("{HELP}"),
        Slash::Quit => {}
        Slash::Unknown(name) => {
            return Err(CliError::Input(format!(
                "/{name} is not a command (/help lists them; //text sends a message starting with /)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_messages_or_commands() {
        assert_eq!(parse("hello /usage"), Typed::Message("hello /usage".into()));
        assert_eq!(parse(" /usage "), Typed::Command(Slash::Usage));
        assert_eq!(parse("/quit now"), Typed::Command(Slash::Quit));
        assert_eq!(parse("//etc/hosts"), Typed::Message("/etc/hosts".into()));
        assert_eq!(parse("/frob"), Typed::Command(Slash::Unknown("frob".into())));
        assert_eq!(
            viewer_url("http://gw:8080", "sesn-1"),
            "http://gw:8080/ui/#/sessions/sesn-1"
        );
    }
}
