//! `/v1/vaults` and `/v1/vaults/{id}/credentials`: vaults and credentials stored as Secrets in the tenant's
//! namespace (see [`corral_api::vault`]). Credential secrets are write-only: no response, log line or event holds
//! them.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
};
use corral_api::vault::{MANAGED_BY, MANAGED_BY_VALUE, OBJECT, OBJECT_CREDENTIAL, OBJECT_VAULT, VAULT};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams, Preconditions, PropagationPolicy},
};
use serde_json::{Value, json};

use super::objects::{self, api};
use crate::{
    auth::Tenant,
    body::parse,
    error::{ApiError, ApiResult},
    mapping::{
        common::{created_at, patch_metadata},
        vault::{
            CredentialCreate, CredentialUpdate, VaultCreate, VaultUpdate, archived, check_display_name,
            credential_object, credential_secret, is_credential_of, is_vault, merge_auth, metadata,
            parse_auth, set_annotations, set_auth, stored_auth, update_vault, vault_object, vault_secret,
        },
    },
    pagination::{SortKey, paginate},
    query::{Order, Query},
    state::AppState,
};

const VAULT_WHAT: &str = "vault";
const CREDENTIAL_WHAT: &str = "credential";
/// Attempts of a read-modify-write before answering 409.
const UPDATE_ATTEMPTS: usize = 4;

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(corral_api::labels::GATEWAY_FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// The vault `id` of the tenant: a Secret labelled as a vault (any other Secret is "not found").
pub async fn get_vault(api: &Api<Secret>, id: &str) -> ApiResult<Secret> {
    let secret = objects::get(api, VAULT_WHAT, id).await?;
    if !is_vault(&secret) {
        return Err(ApiError::not_found(VAULT_WHAT, id));
    }
    Ok(secret)
}

async fn get_credential(api: &Api<Secret>, vault: &str, id: &str) -> ApiResult<Secret> {
    get_vault(api, vault).await?;
    let secret = objects::get(api, CREDENTIAL_WHAT, id).await?;
    if !is_credential_of(&secret, vault) {
        return Err(ApiError::not_found(CREDENTIAL_WHAT, id));
    }
    Ok(secret)
}

/// Deletes `secret` if it is still the object that was read (its uid).
async fn delete_exact(api: &Api<Secret>, secret: &Secret, what: &str) -> ApiResult<()> {
    let id = secret.metadata.name.clone().unwrap_or_default();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: None,
        }),
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(&id, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Err(ApiError::not_found(what, &id)),
        Err(e) => Err(e.into()),
    }
}

/// Lists the Secrets matching `selector`, filtered and cut into the page the query asks for.
async fn list_page(
    api: &Api<Secret>,
    selector: &str,
    query: Option<&str>,
    keep: impl Fn(&Secret) -> bool,
    render: impl Fn(&Secret) -> Value,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(query);
    let limit = query.limit(20, 100)?;
    let include_archived = query.bool("include_archived")?.unwrap_or(false);
    let range = query.time_range("created_at")?;
    let order = query.order(Order::Desc)?;
    let secrets = api.list(&ListParams::default().labels(selector)).await?;
    let items = secrets
        .items
        .into_iter()
        .filter(|s| keep(s) && (include_archived || !archived(&s.metadata)))
        .filter(|s| range.contains(created_at(&s.metadata)))
        .map(|s| {
            let key = SortKey {
                created: created_at(&s.metadata),
                id: s.metadata.name.clone().unwrap_or_default(),
            };
            (key, s)
        })
        .collect();
    let page = paginate(items, order, limit, query.get("page"))?;
    let data: Vec<Value> = page.data.iter().map(render).collect();
    Ok(Json(json!({ "data": data, "next_page": page.next_page })))
}

/// `POST /v1/vaults`.
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: VaultCreate = parse(&body)?;
    let id = objects::new_id("vlt");
    let secret = vault_secret(&tenant.namespace, &id, &req)?;
    let created = api::<Secret>(&state, &tenant)
        .create(&post_params(), &secret)
        .await?;
    Ok(Json(vault_object(&created)))
}

/// `GET /v1/vaults/{vault_id}`.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let vault = get_vault(&api(&state, &tenant), &id).await?;
    Ok(Json(vault_object(&vault)))
}

/// `POST /v1/vaults/{vault_id}`: `display_name`, `metadata` (patch).
pub async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    let mut last_conflict = None;
    for _ in 0..UPDATE_ATTEMPTS {
        let req: VaultUpdate = parse(&body)?;
        let mut vault = get_vault(&api, &id).await?;
        if !update_vault(&mut vault, req)? {
            return Ok(Json(vault_object(&vault)));
        }
        match objects::replace(&api, &id, &vault).await {
            Ok(updated) => return Ok(Json(vault_object(&updated))),
            Err(err) if err.status == 409 => last_conflict = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::conflict("the vault changed concurrently; retry")))
}

/// `POST /v1/vaults/{vault_id}/archive`.
pub async fn archive(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    get_vault(&api, &id).await?;
    let vault = objects::archive(&api, VAULT_WHAT, &id).await?;
    Ok(Json(vault_object(&vault)))
}

/// `DELETE /v1/vaults/{vault_id}`: the vault and its credentials (deleted here, and by the garbage collector
/// through their owner reference).
pub async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    let vault = get_vault(&api, &id).await?;
    let selector = format!("{OBJECT}={OBJECT_CREDENTIAL},{VAULT}={id},{MANAGED_BY}={MANAGED_BY_VALUE}");
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels(&selector))
        .await?;
    delete_exact(&api, &vault, VAULT_WHAT).await?;
    Ok(Json(json!({ "id": id, "type": "vault_deleted" })))
}

/// `GET /v1/vaults`: `include_archived`, `created_at[...]`, `order`, `limit` (20, at most 100), `page`.
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let selector = format!("{OBJECT}={OBJECT_VAULT},{MANAGED_BY}={MANAGED_BY_VALUE}");
    list_page(
        &api(&state, &tenant),
        &selector,
        query.as_deref(),
        is_vault,
        vault_object,
    )
    .await
}

/// `POST /v1/vaults/{vault_id}/credentials`.
pub async fn create_credential(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(vault_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    let req: CredentialCreate = parse(&body)?;
    let auth = parse_auth(req.auth)?;
    let vault = get_vault(&api, &vault_id).await?;
    if archived(&vault.metadata) {
        return Err(ApiError::invalid(format!(
            "vault {vault_id:?} is archived; it takes no new credentials"
        )));
    }
    let id = objects::new_id("vcrd");
    let secret = credential_secret(
        &vault,
        &id,
        &auth,
        req.display_name.as_deref(),
        &req.metadata.unwrap_or_default(),
    )?;
    let created = api.create(&post_params(), &secret).await?;
    Ok(Json(credential_object(&created)))
}

/// `GET /v1/vaults/{vault_id}/credentials/{credential_id}`.
pub async fn retrieve_credential(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((vault_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let secret = get_credential(&api(&state, &tenant), &vault_id, &id).await?;
    Ok(Json(credential_object(&secret)))
}

/// `POST /v1/vaults/{vault_id}/credentials/{credential_id}`: `auth` (partial, same type), `display_name`,
/// `metadata` (patch).
pub async fn update_credential(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((vault_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    let mut last_conflict = None;
    for _ in 0..UPDATE_ATTEMPTS {
        let req: CredentialUpdate = parse(&body)?;
        let mut secret = get_credential(&api, &vault_id, &id).await?;
        if let Some(patch) = req.auth {
            let stored = stored_auth(&secret)
                .ok_or_else(|| ApiError::internal(format!("credential {id} holds no readable auth")))?;
            let auth = merge_auth(&stored, patch)?;
            set_auth(&mut secret, &auth)?;
        }
        let name = match req.display_name {
            Some(Some(name)) => {
                check_display_name(&name, false)?;
                Some(name)
            }
            Some(None) => None,
            None => crate::mapping::vault::display_name(&secret.metadata),
        };
        let current = metadata(&secret.metadata);
        let meta = match &req.metadata {
            Some(patch) => patch_metadata(&current, patch, false),
            None => current,
        };
        crate::mapping::common::check_metadata(&meta)?;
        set_annotations(&mut secret.metadata, name.as_deref(), &meta);
        match objects::replace(&api, &id, &secret).await {
            Ok(updated) => return Ok(Json(credential_object(&updated))),
            Err(err) if err.status == 409 => last_conflict = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::conflict("the credential changed concurrently; retry")))
}

/// `POST /v1/vaults/{vault_id}/credentials/{credential_id}/archive`.
pub async fn archive_credential(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((vault_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    get_credential(&api, &vault_id, &id).await?;
    let secret = objects::archive(&api, CREDENTIAL_WHAT, &id).await?;
    Ok(Json(credential_object(&secret)))
}

/// `DELETE /v1/vaults/{vault_id}/credentials/{credential_id}`.
pub async fn delete_credential(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((vault_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    let secret = get_credential(&api, &vault_id, &id).await?;
    delete_exact(&api, &secret, CREDENTIAL_WHAT).await?;
    Ok(Json(json!({ "id": id, "type": "vault_credential_deleted" })))
}

/// `GET /v1/vaults/{vault_id}/credentials`: `include_archived`, `created_at[...]`, `order`, `limit` (20, at most
/// 100), `page`.
pub async fn list_credentials(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(vault_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let api = api::<Secret>(&state, &tenant);
    get_vault(&api, &vault_id).await?;
    let selector = format!("{OBJECT}={OBJECT_CREDENTIAL},{VAULT}={vault_id},{MANAGED_BY}={MANAGED_BY_VALUE}");
    list_page(
        &api,
        &selector,
        query.as_deref(),
        |s| is_credential_of(s, &vault_id),
        credential_object,
    )
    .await
}
