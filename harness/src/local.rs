//! The local runner (`corral-harness run`): one session on this machine, without a cluster.
