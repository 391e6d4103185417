//! `corral approve`: confirm (or deny) a tool call that waits for a person, optionally as a Kubernetes identity.

use std::io::Read;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    args::{ApproveArgs, Output},
    client::Client,
    error::{CliError, Result},
    output,
    resources::id_segment,
};

/// The header carrying the approver's own Kubernetes token (the gateway's `--approval-rbac`).
const APPROVER_TOKEN_HEADER: &str = "X-Corral-Approver-Token";

/// The environment variable holding the approver token when no file is named.
const APPROVER_TOKEN_ENV: &str = "CORRAL_APPROVER_TOKEN";

/// The approver token: read from `file` (`-` is standard input), else `from_env`.
fn approver_token(file: Option<&str>, from_env: Option<String>) -> Result<Option<String>> {
    let token = match file {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                CliError::Other(format!("reading the approver token from standard input: {e}"))
            })?;
            Some(text)
        }
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Other(format!("reading the approver token from {path}: {e}")))?,
        ),
        None => from_env,
    };
    match token.map(|t| t.trim().to_owned()) {
        Some(t) if t.is_empty() => Err(CliError::Other("the approver token is empty".into())),
        other => Ok(other),
    }
}

/// The event `corral approve` sends.
fn confirmation(args: &ApproveArgs) -> Value {
    let mut event = json!({
        "type": "user.tool_confirmation",
        "tool_use_id": args.tool_use,
        "result": if args.deny { "deny" } else { "allow" },
    });
    if let Some(message) = &args.message {
        event["deny_message"] = Value::String(message.clone());
    }
    json!({ "events": [event] })
}

/// `corral approve`.
pub async fn run(client: &Client, format: Output, args: ApproveArgs) -> Result<()> {
    let session = id_segment(&args.session)?;
    let token = approver_token(
        args.approver_token_file.as_deref(),
        std::env::var(APPROVER_TOKEN_ENV).ok(),
    )?;
    let mut req = client
        .request(Method::POST, &format!("/v1/sessions/{session}/events"))
        .json(&confirmation(&args));
    if let Some(token) = &token {
        req = req.header(APPROVER_TOKEN_HEADER, token);
    }
    let sent = client.send(req).await?;
    match format {
        f if f.human() => {
            let verb = if args.deny { "denied" } else { "allowed" };
            crate::out!("{verb} {} in {session}", args.tool_use);
            Ok(())
        }
        _ => output::data(format, sent.get("data").unwrap_or(&Value::Null)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(deny: bool, message: Option<&str>) -> ApproveArgs {
        ApproveArgs {
            session: "sesn_1".into(),
            tool_use: "sevt_1".into(),
            deny,
            message: message.map(str::to_owned),
            approver_token_file: None,
        }
    }

    #[test]
    fn allows_or_denies_with_a_message() {
        assert_eq!(
            confirmation(&args(false, None)),
            json!({ "events": [{ "type": "user.tool_confirmation", "tool_use_id": "sevt_1", "result": "allow" }] })
        );
        assert_eq!(
            confirmation(&args(true, Some("not on prod")))["events"][0],
            json!({ "type": "user.tool_confirmation", "tool_use_id": "sevt_1", "result": "deny",
                    "deny_message": "not on prod" })
        );
    }

    #[test]
    fn the_token_comes_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJ.tok\n").unwrap();
        let file = path.to_str().unwrap();
        assert_eq!(approver_token(None, None).unwrap(), None);
        let env = || Some("from-env".to_owned());
        assert_eq!(approver_token(None, env()).unwrap().as_deref(), Some("from-env"));
        assert_eq!(
            approver_token(Some(file), env()).unwrap().as_deref(),
            Some("eyJ.tok")
        );
        std::fs::write(&path, " \n").unwrap();
        assert!(approver_token(Some(file), None).is_err());
        let missing = dir.path().join("missing");
        let err = approver_token(missing.to_str(), None).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
