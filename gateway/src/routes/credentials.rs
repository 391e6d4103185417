//! `/v1/vaults/{vault_id}/credentials`: credentials stored as Secrets owned by their vault's Secret. Credential
//! secrets are write-only: no response, log line or event holds them. Special cases: every route needs the vault,
//! and an archived vault takes no new credentials.

use corral_api::vault::{MANAGED_BY, MANAGED_BY_VALUE, OBJECT, OBJECT_CREDENTIAL, VAULT};
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use super::vaults::Vaults;
use crate::{
    error::{ApiError, ApiResult},
    mapping::credential::{
        CredentialCreate, CredentialUpdate, credential_object, credential_secret, parse_auth,
        update_credential,
    },
    mapping::vault::is_credential_of,
    resource::{ApiResource, Cx, Names, Secrets, Store, handlers::fetch},
};

/// The credentials resource.
pub struct Credentials;

impl ApiResource for Credentials {
    type Store = Secrets;
    type Create = CredentialCreate;
    type Update = CredentialUpdate;
    const NAMES: Names = Names::new(
        "credential",
        "vcrd",
        "/v1/vaults/{vault_id}/credentials",
        "credential_id",
    )
    .deletable("vault_credential_deleted");
    const STORE: fn(&Cx) -> Secrets = |cx| {
        let vault = cx.parent().to_owned();
        let selector =
            format!("{OBJECT}={OBJECT_CREDENTIAL},{VAULT}={vault},{MANAGED_BY}={MANAGED_BY_VALUE}");
        Secrets::new(cx.api(), selector, move |s| is_credential_of(s, &vault))
    };

    /// The vault must exist.
    async fn enter(cx: &Cx) -> ApiResult<()> {
        fetch::<Vaults>(cx, cx.parent()).await.map(drop)
    }

    async fn create(cx: &Cx, id: &str, req: &CredentialCreate) -> ApiResult<Secret> {
        let auth = parse_auth(req.auth.clone())?;
        let vault = fetch::<Vaults>(cx, cx.parent()).await?;
        if <Secrets as Store>::entry(&vault).archived {
            return Err(ApiError::invalid(format!(
                "vault {:?} is archived; it takes no new credentials",
                cx.parent()
            )));
        }
        let metadata = req.metadata.clone().unwrap_or_default();
        credential_secret(&vault, id, &auth, req.display_name.as_deref(), &metadata)
    }

    async fn update(_cx: &Cx, current: &Secret, req: CredentialUpdate) -> ApiResult<Option<Secret>> {
        let mut next = current.clone();
        update_credential(&mut next, req)?;
        Ok((next != *current).then_some(next))
    }

    async fn render(_cx: &Cx, credentials: &[Secret]) -> ApiResult<Vec<Value>> {
        Ok(credentials.iter().map(credential_object).collect())
    }
}
