//! The sandbox pod contract: what the operator, the harness and the daemon agree on about a sandbox pod. The
//! operator builds the pod from these names, the daemon reads its settings from the variables, and the harness
//! finds the token and the endpoint with them.

/// The daemon binary's file name (in Corral's daemon image and next to the harness in local mode).
pub const BINARY_NAME: &str = "corral-sandbox";

/// The daemon's subcommand that installs an Environment's packages (the `install-packages` init container).
pub const INSTALL_PACKAGES_COMMAND: &str = "install-packages";

/// Where the daemon's static binary is in Corral's daemon image (the sandbox pod's init container copies it into the
/// sandbox container).
pub const DAEMON_IMAGE_BINARY: &str = "/usr/local/bin/sandbox";

/// The `app.kubernetes.io/component` label of every sandbox pod (the egress proxy finds sandbox pods by it).
pub const POD_COMPONENT: &str = "sandbox";

/// The port the daemon listens on in a sandbox pod (its `host:port` endpoint is published in the Session status).
pub const DAEMON_PORT: u16 = 7070;

/// The key of the daemon's token in the sandbox Secret.
pub const TOKEN_KEY: &str = "token";

/// The prefix of every variable the daemon reads; a launcher clears inherited ones.
pub const ENV_PREFIX: &str = "CORRAL_SANDBOX_";

/// The name of a session's sandbox pod and of its token Secret (the harness finds both by this name).
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
    fn every_variable_carries_the_prefix_a_launcher_clears() {
        for name in [
            vars::ADDR,
            vars::TOKEN_FILE,
            vars::TOKEN,
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
    fn a_session_sandbox_is_named_after_the_session() {
        assert_eq!(sandbox_name("s1"), "sandbox-s1");
    }
}
