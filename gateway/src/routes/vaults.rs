//! `/v1/vaults`: vaults stored as labelled Secrets of the tenant's namespace (see [`corral_api::vault`]). Special
//! case: deleting a vault deletes its credentials.

use corral_api::vault::{MANAGED_BY, MANAGED_BY_VALUE, OBJECT, OBJECT_CREDENTIAL, OBJECT_VAULT, VAULT};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use serde_json::Value;

use crate::{
    error::ApiResult,
    mapping::vault::{VaultCreate, VaultUpdate, is_vault, update_vault, vault_object, vault_secret},
    resource::{ApiResource, Cx, Names, Secrets},
};

/// The vaults resource.
pub struct Vaults;

impl ApiResource for Vaults {
    type Store = Secrets;
    type Create = VaultCreate;
    type Update = VaultUpdate;
    const NAMES: Names = Names::new("vault", "vlt", "/v1/vaults", "vault_id").deletable("vault_deleted");
    const STORE: fn(&Cx) -> Secrets = |cx| {
        let selector = format!("{OBJECT}={OBJECT_VAULT},{MANAGED_BY}={MANAGED_BY_VALUE}");
        Secrets::new(cx.api(), selector, is_vault)
    };

    async fn create(cx: &Cx, id: &str, req: &VaultCreate) -> ApiResult<Secret> {
        vault_secret(&cx.tenant.namespace, id, req)
    }

    async fn update(_cx: &Cx, current: &Secret, req: VaultUpdate) -> ApiResult<Option<Secret>> {
        let mut next = current.clone();
        Ok(update_vault(&mut next, req)?.then_some(next))
    }

    /// The credentials go first (the garbage collector would also remove them through their owner reference).
    async fn deleting(cx: &Cx, vault: &Secret) -> ApiResult<()> {
        let id = vault.metadata.name.as_deref().unwrap_or_default();
        let selector = format!("{OBJECT}={OBJECT_CREDENTIAL},{VAULT}={id},{MANAGED_BY}={MANAGED_BY_VALUE}");
        cx.api::<Secret>()
            .delete_collection(&DeleteParams::default(), &ListParams::default().labels(&selector))
            .await?;
        Ok(())
    }

    async fn render(_cx: &Cx, vaults: &[Secret]) -> ApiResult<Vec<Value>> {
        Ok(vaults.iter().map(vault_object).collect())
    }
}
