//! The Environment's `packages`, installed when a sandbox pod starts: `corral-sandbox install-packages` runs in an
//! init container from the sandbox's own image (which carries the package managers), as the sandbox's non-root user,
//! into a prefix directory the sandbox container then mounts. Nothing is written to the image's root filesystem, so
//! the sandbox keeps its read-only root and its uid; the daemon puts the prefix's directories on the shell's `PATH`,
//! `PYTHONPATH`, `NODE_PATH`, `GEM_PATH` and `LD_LIBRARY_PATH`.
//!
//! Package managers reach their registries from the pod's network (mirrors are set with the Environment's sandbox
//! `env`, for example `PIP_INDEX_URL`); apt packages are downloaded and unpacked without maintainer scripts.

pub mod apt;
pub mod cli;
pub mod layout;
pub mod plan;

pub use layout::Layout;
pub use plan::PackageLists;
