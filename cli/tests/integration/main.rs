//! The real `corral` binary against a real gateway (`corral-gateway serve` as a child process), a real
//! redis-server and a real kube-apiserver. Run them with `hack/cli-it.sh`, which brings the light API server up,
//! builds the gateway and runs `cargo test -p corral-cli --features integration`.
#![cfg(feature = "integration")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod events;
mod files;
mod harness;
mod resources;
mod s3;
mod skills;
mod terminal;
