//! `/v1/environments`: Environment custom resources. Special cases: the API's `environment_not_found` code, and an
//! archived environment takes no updates.

use corral_api::Environment;
use serde_json::Value;

use crate::{
    error::{ApiError, ApiResult},
    mapping::environment::{
        EnvironmentCreate, EnvironmentUpdate, apply_update, environment_object, spec_from_create,
    },
    resource::{ApiResource, CustomResources, Cx, Names, Store},
};

/// The environments resource.
pub struct Environments;

impl ApiResource for Environments {
    type Store = CustomResources<Environment>;
    type Create = EnvironmentCreate;
    type Update = EnvironmentUpdate;
    const NAMES: Names = Names::new("environment", "env", "/v1/environments", "environment_id")
        .deletable("environment_deleted");
    const STORE: fn(&Cx) -> Self::Store = CustomResources::of;

    fn not_found(id: &str) -> ApiError {
        ApiError::not_found(Self::NAMES.what, id).with_code("environment_not_found")
    }

    async fn create(_cx: &Cx, id: &str, req: &EnvironmentCreate) -> ApiResult<Environment> {
        Ok(Environment::new(id, spec_from_create(req.clone())?))
    }

    async fn update(
        _cx: &Cx,
        current: &Environment,
        req: EnvironmentUpdate,
    ) -> ApiResult<Option<Environment>> {
        if <Self::Store as Store>::entry(current).archived {
            let id = current.metadata.name.as_deref().unwrap_or_default();
            return Err(
                ApiError::invalid(format!("environment {id:?} is archived and cannot be updated"))
                    .with_code("environment_archived"),
            );
        }
        let spec = apply_update(&current.spec, req)?;
        Ok((spec != current.spec).then(|| Environment {
            spec,
            ..current.clone()
        }))
    }

    async fn render(_cx: &Cx, objects: &[Environment]) -> ApiResult<Vec<Value>> {
        Ok(objects.iter().map(environment_object).collect())
    }
}
