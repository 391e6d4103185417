//! Handler tests against a real kube-apiserver and a real redis-server. Run them with `hack/gateway-it.sh` (which
//! brings the light API server up when needed), or `cargo test -p corral-gateway --features integration` when one
//! is up already.
#![cfg(feature = "integration")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod approvals;
mod budgets;
mod environments;
mod events;
mod files;
mod files_limits;
mod harness;
mod limits;
mod lost_answers;
mod memory;
mod outputs;
mod platform;
mod redis_restart;
mod s3;
mod sdk_fields;
mod session_cache;
mod session_resources;
mod sessions;
mod skills;
mod stream;
mod traces;
mod vaults;
mod walls;
