//! The egress proxy of Corral's sandboxes: each sandbox reaches the network through it with a proxy identity the
//! operator gave its pod; the proxy enforces the Environment's host list by name (plain HTTP and `CONNECT`), keeps
//! internal and private addresses and all but the open ports closed whatever a host list says (only the platform
//! operator opens named internal hosts), caps connections and times out slow or idle ones, and replaces the session's
//! vault credential placeholders with their values on requests to the credentials' hosts, so secrets never enter
//! the sandbox. The NetworkPolicy of `limited` sandboxes lets them reach only this proxy.

pub mod credentials;
pub mod directory;
pub mod idle;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod tls;
pub mod upstream;
pub mod walls;
