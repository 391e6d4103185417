//! Pure mappings between the API's JSON and the custom resources: request → spec, resource → API object.

pub mod agent;
pub mod agent_params;
pub mod budget;
pub mod common;
pub mod credential;
pub mod environment;
pub mod repository;
pub mod session;
pub mod vault;
