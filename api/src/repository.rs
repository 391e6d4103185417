//! Repository resources (`github_repository`, any http(s) git remote): the names shared by the gateway (which
//! stores a token sent in an API body), the operator (which hands the token to the egress proxy in the sandbox's
//! grant), the proxy (which sends it to the repository's host) and the harness (which clones into the sandbox).
//! The token itself never enters the sandbox. Pure; no I/O.

use crate::session::SessionResource;

/// The `corral.dev/object` label value of a Secret the gateway writes for an `authorization_token`.
pub const TOKEN_OBJECT: &str = "repository-token";

/// The Secret type of those Secrets.
pub const TOKEN_SECRET_TYPE: &str = "corral.dev/repository-token";

/// The data key holding the token.
pub const TOKEN_KEY: &str = "token";

/// The `type` of a repository credential in an egress grant: `{"type": "git_repository", "url", "token"}`.
pub const GRANT_TYPE: &str = "git_repository";

/// The name of the Secret holding the token of resource `index` of session `session`.
pub fn token_secret_name(session: &str, index: usize) -> String {
    format!("{session}-repo-{index}")
}

/// The repository's name in `url`: its last path segment without `.git` (`repo` when there is none).
pub fn repository_name(url: &str) -> String {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() || name == "." || name == ".." {
        "repo".to_owned()
    } else {
        name.to_owned()
    }
}

/// Where a repository resource appears in the sandbox: its `mountPath`, or `/workspace/<repo-name>`.
pub fn mount_path(resource: &SessionResource) -> String {
    resource.mount_path.clone().unwrap_or_else(|| {
        format!(
            "/workspace/{}",
            repository_name(resource.url.as_deref().unwrap_or_default())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_name_is_the_last_path_segment_without_git() {
        assert_eq!(repository_name("https://github.com/o/r.git"), "r");
        assert_eq!(repository_name("https://github.com/o/r/"), "r");
        assert_eq!(repository_name("http://git.ns.svc:8080/repo.git?x=1"), "repo");
        assert_eq!(repository_name("https://host"), "repo");
        assert_eq!(repository_name("https://host/.."), "repo");
        assert_eq!(token_secret_name("sesn-01abc", 2), "sesn-01abc-repo-2");
    }
}
