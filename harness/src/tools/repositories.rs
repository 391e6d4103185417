//! Cloning a session's repository resources into its sandbox when the sandbox comes up, before its first tool
//! call runs. The clone runs in the sandbox's shell like any command, so it goes through the egress proxy, which
//! adds the repository's token on the way to its host: the token never enters the sandbox, and the agent's later
//! `git fetch` and `git push` are authorised the same way. A repository already cloned (a call after the first, or
//! a sandbox that kept its workspace) is left as it is.

use std::time::Duration;

use corral_api::{
    Session,
    repository::mount_path,
    session::{CheckoutType, SessionResource, SessionResourceType},
};
use corral_sandbox_protocol::SandboxClient;

/// How long cloning every repository of a session may take.
pub const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// What the script prints last when every repository is in place.
const DONE: &str = "corral: repositories ready";

/// `text` quoted for bash.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The shell function the script calls once per repository: `get URL DEST KIND REF`.
const GET: &str = r#"get() {
  url=$1 dest=$2 kind=$3 ref=$4
  if [ -e "$dest/.git" ]; then return 0; fi
  if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
    echo "cannot clone $url: $dest exists and is not empty" >&2; return 1
  fi
  mkdir -p "$(dirname "$dest")" || return 1
  case $kind in
    branch) git clone --quiet --branch "$ref" -- "$url" "$dest" ;;
    commit) git clone --quiet --no-checkout -- "$url" "$dest" &&
      { git -C "$dest" checkout --quiet "$ref" 2>/dev/null ||
        { git -C "$dest" fetch --quiet origin "$ref" && git -C "$dest" checkout --quiet FETCH_HEAD; }; } ;;
    *) git clone --quiet -- "$url" "$dest" ;;
  esac || { rm -rf -- "$dest"; echo "cannot clone $url into $dest (see git's message above)" >&2; return 1; }
}"#;

/// The script that clones every repository resource of `resources` that is not there yet; `None` when there are
/// none. Git never prompts (no terminal): a refused token is an error, not a hang.
pub fn clone_script(resources: &[SessionResource]) -> Option<String> {
    let lines: Vec<String> = resources
        .iter()
        .filter(|r| r.kind == SessionResourceType::GithubRepository)
        .filter_map(|r| {
            let url = r.url.as_deref()?;
            let (kind, reference) = match &r.checkout {
                Some(c) if c.kind == CheckoutType::Branch => ("branch", c.name.clone().unwrap_or_default()),
                Some(c) => ("commit", c.sha.clone().unwrap_or_default()),
                None => ("default", String::new()),
            };
            Some(format!(
                "get {} {} {kind} {} || ok=1",
                quote(url),
                quote(&mount_path(r)),
                quote(&reference)
            ))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(format!(
        "(\nexport GIT_TERMINAL_PROMPT=0 GCM_INTERACTIVE=never\n{GET}\nok=0\n{}\n[ $ok = 0 ] && echo '{DONE}'\n)",
        lines.join("\n")
    ))
}

/// Clones the repositories of `session` into the sandbox behind `client`; the error says which repository could
/// not be cloned and what git said. A failed clone is tried once more after [`RETRY_AFTER`]: the proxy may learn
/// of a new sandbox's grant a moment after the sandbox is ready.
pub async fn clone_into(client: &SandboxClient, session: &Session) -> Result<(), String> {
    let Some(script) = clone_script(&session.spec.resources) else {
        return Ok(());
    };
    match run_script(client, &script).await {
        Ok(()) => Ok(()),
        Err(_) => {
            tokio::time::sleep(RETRY_AFTER).await;
            run_script(client, &script).await
        }
    }
}

/// How long a failed clone waits before its one retry.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

async fn run_script(client: &SandboxClient, script: &str) -> Result<(), String> {
    let input = serde_json::json!({ "command": script, "timeout_ms": CLONE_TIMEOUT.as_millis() as u64 });
    let result = client
        .execute("bash", input, CLONE_TIMEOUT + Duration::from_secs(30))
        .await
        .map_err(|e| format!("cannot clone the session's repositories: {e}"))?;
    let text: String = result
        .content
        .iter()
        .map(|corral_sandbox_protocol::ContentBlock::Text { text }| text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if !result.is_error && text.lines().any(|l| l.trim() == DONE) {
        return Ok(());
    }
    Err(format!(
        "the session's repositories could not be cloned into the sandbox: {}",
        text.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: serde_json::Value) -> Vec<SessionResource> {
        serde_json::from_value(json).unwrap()
    }

    /// Runs `script` in bash with `PATH` holding a fake `git` that records its arguments.
    fn run(script: &str, dir: &std::path::Path) -> (bool, String, String) {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("git");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"$@\" >> \"$LOG\"\nfor a; do last=$a; done\n\
             case \"$1\" in clone) case \"$last\" in *fail*) echo 'fatal: Authentication failed' >&2; mkdir -p \"$last\"; exit 128;; esac; mkdir -p \"$last/.git\";; esac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.join("log");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("LOG", &log)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (
            text.lines().any(|l| l == DONE),
            text,
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }

    #[test]
    fn each_repository_is_cloned_once_at_its_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let at = |p: &str| dir.path().join(p).display().to_string();
        let list = resources(serde_json::json!([
            {"type": "github_repository", "url": "https://h/o/r.git", "mountPath": at("w/r"),
             "checkout": {"type": "branch", "name": "dev'x"}},
            {"type": "github_repository", "url": "https://h/o/s", "mountPath": at("w/s"),
             "checkout": {"type": "commit", "sha": "abc123"}},
            {"type": "github_repository", "url": "https://h/o/t", "mountPath": at("w/t")},
            {"type": "file", "fileId": "f"},
        ]));
        let script = clone_script(&list).unwrap();
        let (ok, text, log) = run(&script, dir.path());
        assert!(ok, "{text}");
        let expected = format!(
            "clone --quiet --branch dev'x -- https://h/o/r.git {}\nclone --quiet --no-checkout -- https://h/o/s {}\n\
             -C {} checkout --quiet abc123\nclone --quiet -- https://h/o/t {}\n",
            at("w/r"),
            at("w/s"),
            at("w/s"),
            at("w/t")
        );
        assert_eq!(log, expected);
        let (ok, _, log) = run(&script, dir.path());
        assert!(ok);
        assert_eq!(log, expected, "nothing is cloned twice");
    }

    #[test]
    fn a_failed_clone_is_reported_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("fail").display().to_string();
        let list = resources(serde_json::json!([
            {"type": "github_repository", "url": "https://h/o/r", "mountPath": dest},
        ]));
        let (ok, text, _) = run(&clone_script(&list).unwrap(), dir.path());
        assert!(!ok);
        assert!(text.contains("fatal: Authentication failed"), "{text}");
        assert!(text.contains("cannot clone https://h/o/r"), "{text}");
        assert!(!std::path::Path::new(&dest).exists(), "no half clone");
        assert!(clone_script(&resources(serde_json::json!([{"type": "file", "fileId": "f"}]))).is_none());
    }
}
