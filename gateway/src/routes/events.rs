//! `/v1/sessions/{id}/events`: send client events, list the history.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
};
use corral_api::events::EventBody;
use corral_api::{
    Session,
    events::{EventParam, parse_send_events},
};
use corral_session::{Cursor, NewEvent, Order as LogOrder, StoredEvent};
use serde_json::{Value, json};

use super::objects::{self, api};
use crate::{
    approval,
    auth::Tenant,
    error::{ApiError, ApiResult},
    query::{Order, Query},
    state::AppState,
};

/// Events per page when `limit` is omitted.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page.
pub const MAX_LIMIT: usize = 1000;

/// The API JSON of a stored event.
pub fn event_json(event: &StoredEvent) -> Value {
    serde_json::to_value(&event.event).unwrap_or(Value::Null)
}

/// `event` as stored with the trace context of the request that sent it (`traceparent` under the private `corral`
/// key, which the API's event types drop when read), so that the harness continues the turn's trace.
fn with_trace(event: NewEvent, traceparent: Option<&str>) -> NewEvent {
    let Some(traceparent) = traceparent else {
        return event;
    };
    match serde_json::to_value(&event.body) {
        Ok(Value::Object(mut object)) => {
            object.insert("corral".into(), json!({ "traceparent": traceparent }));
            NewEvent::with_id(event.id, EventBody::Other(Value::Object(object)))
        }
        _ => event,
    }
}

/// Appends client events, those that wake the harness with the current trace context; answers them as the API
/// shows them.
pub async fn append_traced(
    log: &corral_session::SessionLog,
    params: Vec<EventParam>,
) -> corral_session::Result<Vec<StoredEvent>> {
    let traceparent = corral_runtime::telemetry::current_traceparent();
    let mut typed = Vec::with_capacity(params.len());
    let mut to_store = Vec::with_capacity(params.len());
    for param in params {
        let traced = param.wakes_harness();
        let event = NewEvent::from(param);
        typed.push(event.body.clone());
        to_store.push(if traced {
            with_trace(event, traceparent.as_deref())
        } else {
            event
        });
    }
    let mut stored = log.append_user(to_store).await?;
    for (event, body) in stored.iter_mut().zip(typed) {
        event.event.body = body;
    }
    Ok(stored)
}

/// `POST /v1/sessions/{session_id}/events`: validates, appends in order, enqueues the wake-up, and answers the
/// stored events at once (`{"data": [...]}`).
#[tracing::instrument(name = "send_events", skip_all, fields(namespace = %tenant.namespace, session = %id))]
pub async fn send(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    objects::get(&api::<Session>(&state, &tenant), "session", &id).await?;
    let params = parse_send_events(&body).map_err(|e| ApiError::field(&e.field, e.message))?;
    if let Some(verb) = &state.settings.approval_rbac_verb
        && params
            .iter()
            .any(|p| matches!(p, EventParam::UserToolConfirmation(_)))
    {
        approval::authorize(
            &state.kube,
            tenant.identity.as_ref(),
            &tenant.namespace,
            &id,
            verb,
        )
        .await?;
    }
    let wake = params.iter().any(EventParam::wakes_harness);
    let stored = append_traced(&state.log.session(&tenant.namespace, &id), params).await?;
    if wake {
        state.log.enqueue(&tenant.namespace, &id).await?;
    }
    let data: Vec<Value> = stored.iter().map(event_json).collect();
    Ok(Json(json!({ "data": data })))
}

/// `GET /v1/sessions/{session_id}/events`: `order` (asc), `limit` (100, at most 1000), `page`, `types[]`,
/// `created_at[gt|gte|lt|lte]` (compared with `processed_at`).
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(query.as_deref());
    let limit = query.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let order = query.order(Order::Asc)?;
    let types = query.all("types");
    let range = query.time_range("created_at")?;
    let page = query
        .get("page")
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<Cursor>()
                .map_err(|_| ApiError::field("page", "invalid page cursor"))
        })
        .transpose()?;
    objects::get(&api::<Session>(&state, &tenant), "session", &id).await?;
    let log = state.log.session(&tenant.namespace, &id);
    let (log_order, mut after) = match order {
        Order::Asc => (
            LogOrder::Asc,
            page.or_else(|| range.lower().map(Cursor::before_time)),
        ),
        Order::Desc => (
            LogOrder::Desc,
            page.or_else(|| {
                range
                    .upper()
                    .map(|t| Cursor::new(u64::try_from(t.as_millisecond()).unwrap_or(0), u64::MAX))
            }),
        ),
    };
    let matches = |e: &StoredEvent| {
        range.contains(e.cursor.time()) && (types.is_empty() || types.contains(&e.event.type_name()))
    };
    let beyond = |e: &StoredEvent| match order {
        Order::Asc => range.is_past(e.cursor.time()),
        Order::Desc => range.is_before(e.cursor.time()),
    };
    let batch = limit.clamp(100, MAX_LIMIT);
    let mut data = Vec::new();
    let mut next = None;
    'scan: loop {
        let chunk = log.range(after, batch, log_order).await?;
        let mut events = chunk.events.into_iter();
        while let Some(event) = events.next() {
            if beyond(&event) {
                break 'scan;
            }
            if !matches(&event) {
                continue;
            }
            data.push(event_json(&event));
            if data.len() == limit {
                let more = events.any(|e| !beyond(&e) && matches(&e)) || chunk.next.is_some();
                next = more.then_some(event.cursor);
                break 'scan;
            }
        }
        match chunk.next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    Ok(Json(
        json!({ "data": data, "next_page": next.map(|c| c.to_string()) }),
    ))
}
