//! What every long-running Corral component shares: structured logs, the `/metrics`, `/healthz` and `/readyz`
//! server, a shutdown signal on SIGTERM or Ctrl-C, and OpenTelemetry traces behind configuration (feature `otlp`).

pub mod errors;
pub mod health;
pub mod logging;
pub mod shutdown;
pub mod telemetry;

pub use errors::error_chain;
pub use health::{HealthServer, Readiness};
pub use logging::LogArgs;
