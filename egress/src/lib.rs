//! The egress proxy of Corral's sandboxes: each sandbox reaches the network through it with a proxy identity the
//! operator gave its pod; the proxy enforces the Environment's host list by name (plain HTTP and `CONNECT`), keeps
//! cluster-internal and private addresses closed unless a host list names them, and replaces the session's vault
//! credential placeholders with their values on requests to the credentials' hosts, so secrets never enter the
//! sandbox. The NetworkPolicy of `limited` sandboxes lets them reach only this proxy.

pub mod credentials;
pub mod directory;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod tls;
