//! The sandbox pod contract: what the operator, the harness and the daemon agree on about a sandbox pod. The
//! operator builds the pod from these names, the daemon reads its settings from the variables, and the harness
//! finds the pod and its endpoint with them.
//!
//! The daemon's bearer token never enters the tenant's namespace: the operator keeps it in Redis (under the
//! tenant's prefix, `corral_session::keys::Tenant::sandbox_token`, read by the tenant's harness) and gives the pod
//! only its [`token_sha256`] in [`vars::TOKEN_SHA256`]. Knowing the digest lets nobody authenticate; it lets the
//! harness check, through the daemon's open identity route, that the pod at an address is the one whose token it
//! holds before it sends the token (a pod address can be reused by another pod).

use sha2::{Digest, Sha256};

/// The daemon binary's file name (in Corral's daemon image and next to the harness in local mode).
pub const BINARY_NAME: &str = "corral-sandbox";

/// The daemon's subcommand that installs an Environment's packages (the `install-packages` init container).
pub const INSTALL_PACKAGES_COMMAND: &str = "install-packages";

/// Where the daemon's static binary is in Corral's daemon image (the sandbox pod's init container copies it into the
/// sandbox container).
pub const DAEMON_IMAGE_BINARY: &str = "/usr/local/bin/sandbox";

/// The `app.kubernetes.io/component` label of every sandbox pod (the egress proxy finds sandbox pods by it).
pub const POD_COMPONENT: &str = "sandbox";

/// The directories a file resource may be put under: the sandbox's root filesystem is read-only, so only its
/// writable volumes can receive a file (`/mnt/session` is a volume of its own for them).
pub const FILE_RESOURCE_ROOTS: [&str; 2] = ["/mnt/session/", "/workspace/"];

/// Whether `path` may receive a file resource: under one of [`FILE_RESOURCE_ROOTS`], naming a file below it by
/// plain segments (none empty, `.` or `..`, so no trailing `/` either). The Session schema, the gateway and the
/// daemon all hold paths to this rule.
pub fn file_resource_path_ok(path: &str) -> bool {
    FILE_RESOURCE_ROOTS.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.split('/').all(|seg| !matches!(seg, "" | "." | "..")))
    })
}

/// The directory whose files become the session's outputs: Files scoped to the session (docs/files.md).
pub const OUTPUTS_DIR: &str = "/mnt/session/outputs";

/// Whether `path` may name an output: a relative path of plain segments (no empty, `.` or `..` one) without control
/// characters, at most 512 bytes (it becomes the File's `filename`).
pub fn output_path_ok(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && !path.chars().any(char::is_control)
        && path.split('/').all(|seg| !matches!(seg, "" | "." | ".."))
}

/// The port the daemon listens on in a sandbox pod (its `host:port` endpoint is published in the Session status).
pub const DAEMON_PORT: u16 = 7070;

/// The key of the daemon's token in the token Secrets of earlier versions (the operator deletes those Secrets).
pub const TOKEN_KEY: &str = "token";

/// The `app.kubernetes.io/component` label of the token Secrets of earlier versions, which the operator deletes.
pub const LEGACY_TOKEN_SECRET_COMPONENT: &str = "sandbox-token";

/// The SHA-256 of a daemon token, in lowercase hex: what a sandbox pod carries in [`vars::TOKEN_SHA256`] and what
/// the daemon's identity route answers.
pub fn token_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The prefix of every variable the daemon reads; a launcher clears inherited ones.
pub const ENV_PREFIX: &str = "CORRAL_SANDBOX_";

/// The name of a session's own sandbox pod (a claimed warm pod keeps its name; the Session status names the pod).
pub fn sandbox_name(session: &str) -> String {
    format!("sandbox-{session}")
}

/// The variables the daemon (and its `install-packages` subcommand) reads its settings from.
pub mod vars {
    /// The address to serve on (`0.0.0.0:7070` in a pod).
    pub const ADDR: &str = "CORRAL_SANDBOX_ADDR";
    /// A file holding the bearer token.
    pub const TOKEN_FILE: &str = "CORRAL_SANDBOX_TOKEN_FILE";
    /// The bearer token itself.
    pub const TOKEN: &str = "CORRAL_SANDBOX_TOKEN";
    /// The SHA-256 of the bearer token (hex), instead of the token: how a sandbox pod gets it.
    pub const TOKEN_SHA256: &str = "CORRAL_SANDBOX_TOKEN_SHA256";
    /// The workspace directory.
    pub const WORKSPACE: &str = "CORRAL_SANDBOX_WORKSPACE";
    /// Where the daemon writes its bound address once listening.
    pub const ADDR_FILE: &str = "CORRAL_SANDBOX_ADDR_FILE";
    /// Where the Environment's packages were installed.
    pub const PACKAGES_DIR: &str = "CORRAL_SANDBOX_PACKAGES_DIR";
    /// The packages to install (`install-packages`), as the Environment's `config.packages` JSON.
    pub const PACKAGES: &str = "CORRAL_SANDBOX_PACKAGES";
    /// Scratch space for `install-packages`.
    pub const PACKAGES_SCRATCH: &str = "CORRAL_SANDBOX_PACKAGES_SCRATCH";
    /// The egress proxy's URL.
    pub const EGRESS_URL: &str = "CORRAL_SANDBOX_EGRESS_URL";
    /// The pod's proxy user.
    pub const EGRESS_USER: &str = "CORRAL_SANDBOX_EGRESS_USER";
    /// The pod's proxy password.
    pub const EGRESS_PASSWORD: &str = "CORRAL_SANDBOX_EGRESS_PASSWORD";
    /// The egress CA's certificate (PEM).
    pub const EGRESS_CA: &str = "CORRAL_SANDBOX_EGRESS_CA";
    /// The daemon binary a local launcher runs (not read by the daemon).
    pub const BIN: &str = "CORRAL_SANDBOX_BIN";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_resources_go_under_the_writable_volumes_by_plain_segments() {
        for ok in [
            "/mnt/session/uploads/file_1",
            "/workspace/data/in.csv",
            "/workspace/.env",
            "/workspace/a..b",
        ] {
            assert!(file_resource_path_ok(ok), "{ok}");
        }
        for bad in [
            "/etc/passwd",
            "/workspace",
            "/workspace/",
            "/workspace/.",
            "/workspace/..",
            "/workspace/./x",
            "/workspace/a/../../etc/x",
            "/mnt/session//x",
            "/mnt/session/uploads/",
            "/mnt/sessionx/y",
            "relative/x",
            "",
        ] {
            assert!(!file_resource_path_ok(bad), "{bad}");
        }
    }

    #[test]
    fn every_variable_carries_the_prefix_a_launcher_clears() {
        for name in [
            vars::ADDR,
            vars::TOKEN_FILE,
            vars::TOKEN,
            vars::TOKEN_SHA256,
            vars::WORKSPACE,
            vars::ADDR_FILE,
            vars::PACKAGES_DIR,
            vars::PACKAGES,
            vars::PACKAGES_SCRATCH,
            vars::EGRESS_URL,
            vars::EGRESS_USER,
            vars::EGRESS_PASSWORD,
            vars::EGRESS_CA,
        ] {
            assert!(name.starts_with(ENV_PREFIX), "{name}");
        }
    }

    #[test]
    fn a_token_digest_is_its_lowercase_hex_sha256() {
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_session_sandbox_is_named_after_the_session() {
        assert_eq!(sandbox_name("s1"), "sandbox-s1");
    }

    #[test]
    fn output_paths_are_plain_relative_segments() {
        assert!(output_path_ok("report.md") && output_path_ok("charts/q1 final.csv"));
        for bad in ["", "/abs", "a//b", "./a", "a/..", "a\nb", &"a".repeat(513)] {
            assert!(!output_path_ok(bad), "{bad:?}");
        }
    }
}
