//! The handlers every resource shares. Each takes the path ids (the resource's own last), builds the request's
//! [`Cx`], lets the resource check its parent ([`ApiResource::enter`]) and works through its [`Store`].

use std::marker::PhantomData;

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequestParts, Path, RawQuery},
    http::request::Parts,
};
use serde_json::{Value, json};

use super::{ApiResource, Cx, Obj, Select, Store, cx};
use crate::{
    auth::Tenant,
    body::parse,
    error::{ApiError, ApiResult},
    pagination::paginate,
    query::{Order, Query},
    routes::objects,
    state::AppState,
};

/// Attempts of a read-modify-write before answering 409.
pub const UPDATE_ATTEMPTS: usize = 4;

/// The context of a collection route of `R` (every path id is a parent), after [`ApiResource::enter`].
pub struct Collection<R>(pub Cx, pub PhantomData<R>);

/// The context of an object route of `R` and the object's id (the last path id), after [`ApiResource::enter`].
pub struct Item<R>(pub Cx, pub String, pub PhantomData<R>);

/// The request's path ids, outermost first, and its context.
async fn context(parts: &mut Parts, state: &AppState) -> ApiResult<(Cx, Vec<String>)> {
    let Path(ids) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::invalid(e.body_text()))?;
    let tenant = parts
        .extensions
        .get::<Tenant>()
        .cloned()
        .ok_or_else(|| ApiError::unauthenticated("no API key"))?;
    let ids = ids.into_iter().map(|(_, v)| v).collect();
    Ok((cx(state.clone(), tenant, Vec::new()), ids))
}

impl<R: ApiResource> FromRequestParts<AppState> for Collection<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let (mut cx, ids) = context(parts, state).await?;
        cx.parents = ids;
        R::enter(&cx).await?;
        Ok(Self(cx, PhantomData))
    }
}

impl<R: ApiResource> FromRequestParts<AppState> for Item<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let (mut cx, mut ids) = context(parts, state).await?;
        let id = ids.pop().unwrap_or_default();
        cx.parents = ids;
        R::enter(&cx).await?;
        Ok(Self(cx, id, PhantomData))
    }
}

/// The object `id`, or the resource's 404.
pub async fn fetch<R: ApiResource>(cx: &Cx, id: &str) -> ApiResult<Obj<R>> {
    (R::STORE)(cx).get(id).await?.ok_or_else(|| R::not_found(id))
}

/// The wire form of one object.
pub async fn render_one<R: ApiResource>(cx: &Cx, object: &Obj<R>) -> ApiResult<Value> {
    R::render(cx, std::slice::from_ref(object))
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("rendering an object gave nothing"))
}

/// `POST {path}`.
pub async fn create<R: ApiResource>(Collection(cx, _): Collection<R>, body: Bytes) -> ApiResult<Json<Value>> {
    let req: R::Create = parse(&body)?;
    let id = objects::new_id(R::NAMES.id_prefix);
    let object = R::create(&cx, &id, &req).await?;
    let object = (R::STORE)(&cx).create(&id, object).await?;
    R::created(&cx, &object, &req).await?;
    Ok(Json(render_one::<R>(&cx, &object).await?))
}

/// `GET {path}/{id}`.
pub async fn retrieve<R: ApiResource>(
    Item(cx, id, _): Item<R>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let object = fetch::<R>(&cx, &id).await?;
    Ok(Json(
        R::retrieve(&cx, object, Query::parse(query.as_deref())).await?,
    ))
}

/// `POST {path}/{id}`: read, apply, write with the version that was read; on a conflict, read again (a few times).
pub async fn update<R: ApiResource>(Item(cx, id, _): Item<R>, body: Bytes) -> ApiResult<Json<Value>> {
    let store = (R::STORE)(&cx);
    let mut last_conflict = None;
    for _ in 0..UPDATE_ATTEMPTS {
        let req: R::Update = parse(&body)?;
        let current = fetch::<R>(&cx, &id).await?;
        let Some(next) = R::update(&cx, &current, req).await? else {
            return Ok(Json(render_one::<R>(&cx, &current).await?));
        };
        match store.replace(&id, next).await {
            Ok(updated) => {
                R::updated(&cx, &current, &updated).await?;
                return Ok(Json(render_one::<R>(&cx, &updated).await?));
            }
            Err(err) if err.status == 409 => last_conflict = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_conflict
        .unwrap_or_else(|| ApiError::conflict(format!("the {} changed concurrently; retry", R::NAMES.what))))
}

/// `POST {path}/{id}/archive`: once; archiving again keeps the first time.
pub async fn archive<R: ApiResource>(Item(cx, id, _): Item<R>) -> ApiResult<Json<Value>> {
    let current = fetch::<R>(&cx, &id).await?;
    let object = if <R::Store as Store>::entry(&current).archived {
        current
    } else {
        (R::STORE)(&cx).archive(&id).await?
    };
    Ok(Json(render_one::<R>(&cx, &object).await?))
}

/// `DELETE {path}/{id}`.
pub async fn delete<R: ApiResource>(Item(cx, id, _): Item<R>) -> ApiResult<Json<Value>> {
    let object = fetch::<R>(&cx, &id).await?;
    R::deleting(&cx, &object).await?;
    if !(R::STORE)(&cx).delete(&object).await? {
        return Err(R::not_found(&id));
    }
    Ok(Json(
        json!({ "id": id, "type": R::NAMES.deleted.unwrap_or("deleted") }),
    ))
}

/// `GET {path}`: `created_at[gte|gt|lte|lt]`, `include_archived`, `order` (desc), `limit`, `page`, and the
/// resource's own filters ([`ApiResource::select`]).
pub async fn list<R: ApiResource>(
    Collection(cx, _): Collection<R>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(query.as_deref());
    let shape = R::LIST;
    let limit = query.limit(shape.default_limit, shape.max_limit)?;
    let include_archived = query.bool("include_archived")?.unwrap_or(false);
    let range = query.time_range("created_at")?;
    let order = query.order(Order::Desc)?;
    let objects = match R::select(&cx, &query)? {
        Select::Nothing => Vec::new(),
        select => {
            let all = (R::STORE)(&cx).list().await?;
            match select {
                Select::Only(keep) => all.into_iter().filter(|o| keep(o)).collect(),
                _ => all,
            }
        }
    };
    let items = objects
        .into_iter()
        .filter_map(|o| {
            let entry = <R::Store as Store>::entry(&o);
            let keep = (include_archived || !entry.archived) && range.contains(entry.key.created);
            keep.then_some((entry.key, o))
        })
        .collect();
    let page = paginate(items, order, limit, query.get("page"))?;
    let data = R::render(&cx, &page.data).await?;
    let mut out = json!({ "data": data, "next_page": page.next_page });
    if shape.prev_page {
        out["prev_page"] = json!(page.prev_page);
    }
    Ok(Json(out))
}
