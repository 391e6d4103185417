//! The sandbox pod contract as the operator uses it: the names the operator, the harness, the daemon and the egress
//! proxy agree on all come from the sandbox protocol crate; this module only adapts their types to Kubernetes'.

pub use corral_sandbox_protocol::pod::{
    BINARY_NAME, DAEMON_IMAGE_BINARY, INSTALL_PACKAGES_COMMAND, POD_COMPONENT, sandbox_name, vars,
};
pub use corral_sandbox_protocol::wire::HEALTH_PATH;

/// Port the sandbox daemon listens on (Kubernetes ports are `i32`).
pub const DAEMON_PORT: i32 = corral_sandbox_protocol::pod::DAEMON_PORT as i32;
