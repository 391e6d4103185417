//! A session's file resources must fit in its sandbox's disk. The harness writes one copy of the file per
//! `mount_path` (in `/mnt/session` or the workspace, which share the pod's ephemeral-storage budget), and a sandbox
//! that writes more than its budget is evicted, and evicted again each time it is re-created. The budget is the one
//! the operator gives the pod ([`corral_api::disk::sandbox_disk_limit`]): the Environment's own ephemeral-storage
//! limit, or the installation's default (`--sandbox-ephemeral-storage-limit`, the chart's `sandbox.storage.limit`).

use std::collections::BTreeMap;

use corral_api::{
    Environment,
    disk::{quantity_bytes, sandbox_disk_limit},
    session::{SessionResource, SessionResourceType},
};

use super::objects::api;
use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The size in bytes of each file the `resources` name; a file that is gone (deleted, expired) counts 0, as the
/// harness skips it. `known` saves looking up files already read.
pub async fn file_sizes(
    state: &AppState,
    tenant: &Tenant,
    resources: &[SessionResource],
    mut known: BTreeMap<String, u64>,
) -> ApiResult<BTreeMap<String, u64>> {
    for id in resources.iter().filter_map(|r| r.file_id.as_deref()) {
        if known.contains_key(id) {
            continue;
        }
        let size = match super::files::find(state, tenant, id).await {
            Ok(meta) => meta.size_bytes,
            Err(err) if err.status == 404 => 0,
            Err(err) => return Err(err),
        };
        known.insert(id.to_owned(), size);
    }
    Ok(known)
}

/// The Environment named `name` of the tenant, if it is still there.
pub async fn environment(state: &AppState, tenant: &Tenant, name: &str) -> ApiResult<Option<Environment>> {
    Ok(api::<Environment>(state, tenant).get_opt(name).await?)
}

/// Refuses `resources` (400 naming `resources`) when the copies of their files would not fit in the disk of a
/// sandbox of `env`; `sizes` holds every file's size ([`file_sizes`]).
pub fn check_fits(
    state: &AppState,
    env: Option<&Environment>,
    resources: &[SessionResource],
    sizes: &BTreeMap<String, u64>,
) -> ApiResult<()> {
    let limit = sandbox_disk_limit(
        env.and_then(|e| e.spec.sandbox.resources.as_ref()),
        &state.settings.sandbox_disk_limit,
    );
    let Some(budget) = quantity_bytes(&limit) else {
        return Ok(()); // not a quantity: the operator refuses such an Environment before any pod is made
    };
    let total: u64 = resources
        .iter()
        .filter(|r| r.kind == SessionResourceType::File)
        .filter_map(|r| sizes.get(r.file_id.as_deref()?))
        .sum();
    if total as f64 > budget {
        return Err(ApiError::field(
            "resources",
            format!(
                "the file resources total {total} bytes (one copy per mount_path), more than the {limit} \
                 ({} bytes) of disk the session's sandbox has; mount fewer or smaller files, or use an \
                 environment with a larger ephemeral-storage limit",
                budget as u64
            ),
        ));
    }
    Ok(())
}
