//! The harness of Corral's end-to-end suite: a client for the local cluster (or any cluster in `KUBECONFIG`), one
//! temporary labelled namespace per test with its objects, events and pod logs dumped when the test fails, waiting
//! helpers, a client of the installed gateway, and stand-ins a test serves on this host for what Corral talks to
//! outside the cluster (a model provider, an MCP server). The tests themselves live in `tests/` behind the `e2e`
//! feature; `make e2e` brings the cluster up, builds and imports the images, installs Corral with Helm and runs
//! them.

pub mod cluster;
pub mod gateway;
pub mod host;
pub mod mcp;
pub mod model;
pub mod namespace;
pub mod sandbox;
pub mod turns;
pub mod wait;

pub use cluster::Cluster;
pub use namespace::TestNamespace;

/// The installed Redis as this host reaches it, with Corral's system user (`CORRAL_E2E_REDIS_URL`, forwarded by
/// hack/e2e.sh).
pub fn installed_redis_url() -> anyhow::Result<String> {
    std::env::var("CORRAL_E2E_REDIS_URL")
        .map_err(|_| anyhow::anyhow!("CORRAL_E2E_REDIS_URL must point at the installed Redis (hack/e2e.sh)"))
}
