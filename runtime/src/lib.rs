//! What every long-running Corral component shares: structured logs, the `/metrics`, `/healthz` and `/readyz`
//! server, and a shutdown signal on SIGTERM or Ctrl-C.

pub mod health;
pub mod logging;
pub mod shutdown;

pub use health::{HealthServer, Readiness};
pub use logging::LogArgs;
