//! The sandbox pod contract: what the operator, the harness and the sandbox daemon agree on about a sandbox pod (its
//! name, the key of its token Secret, the daemon's port, where the daemon binary is, and the `CORRAL_SANDBOX_*`
//! variables the daemon reads). Every literal of that contract the operator uses lives here and nowhere else in the
//! operator, so that it can move to a shared protocol crate in one edit.

/// Port the sandbox daemon listens on.
pub const DAEMON_PORT: i32 = 7070;

/// The `app.kubernetes.io/component` label of every sandbox pod (the egress proxy finds sandbox pods by it).
pub const POD_COMPONENT: &str = "sandbox";

/// Key of the daemon's token in the sandbox token Secret (the harness reads the same key).
pub const TOKEN_KEY: &str = "token";

/// Where the daemon's static binary is in Corral's daemon image.
pub const DAEMON_IMAGE_BINARY: &str = "/usr/local/bin/sandbox";

/// The daemon's subcommand that installs an Environment's packages.
pub const INSTALL_PACKAGES_COMMAND: &str = "install-packages";

/// The name of a session's sandbox pod and of its token Secret (the harness finds both by this name).
pub fn sandbox_name(session: &str) -> String {
    format!("sandbox-{session}")
}

/// The variables the sandbox daemon reads.
pub mod vars {
    /// The address the daemon listens on.
    pub const ADDR: &str = "CORRAL_SANDBOX_ADDR";
    /// The file holding the daemon's token.
    pub const TOKEN_FILE: &str = "CORRAL_SANDBOX_TOKEN_FILE";
    /// The session's working directory.
    pub const WORKSPACE: &str = "CORRAL_SANDBOX_WORKSPACE";
    /// Where the Environment's packages are installed.
    pub const PACKAGES_DIR: &str = "CORRAL_SANDBOX_PACKAGES_DIR";
    /// The Environment's packages, as JSON (read by `install-packages`).
    pub const PACKAGES: &str = "CORRAL_SANDBOX_PACKAGES";
    /// The scratch directory of `install-packages`.
    pub const PACKAGES_SCRATCH: &str = "CORRAL_SANDBOX_PACKAGES_SCRATCH";
    /// The egress proxy's URL, for asking it about credential placeholders.
    pub const EGRESS_URL: &str = "CORRAL_SANDBOX_EGRESS_URL";
    /// The pod's identity at the egress proxy: user.
    pub const EGRESS_USER: &str = "CORRAL_SANDBOX_EGRESS_USER";
    /// The pod's identity at the egress proxy: password.
    pub const EGRESS_PASSWORD: &str = "CORRAL_SANDBOX_EGRESS_PASSWORD";
    /// The egress CA's certificate (PEM) the sandbox trusts.
    pub const EGRESS_CA: &str = "CORRAL_SANDBOX_EGRESS_CA";
}
