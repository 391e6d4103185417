//! `/v1/sessions/{id}/events`: send client events, list the history.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
};
use corral_api::events::{EventBody, KNOWN_EVENT_TYPES};
use corral_api::events::{EventParam, parse_send_events};
use corral_session::{Cursor, NewEvent, Order as LogOrder, StoredEvent};
use serde_json::{Value, json};

use crate::{
    approval,
    auth::Tenant,
    error::{ApiError, ApiResult},
    query::{Order, Query, TimeRange},
    state::AppState,
};

/// Events per page when `limit` is omitted.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page.
pub const MAX_LIMIT: usize = 1000;

/// The most log entries one list request reads. A filter that matches few events answers a short (even empty) page
/// with a `next_page` to continue from, rather than reading a whole long log in one request.
pub const MAX_SCANNED: usize = 10 * MAX_LIMIT;

/// Parses a `page` cursor, refusing the two that point past either end of the log in the requested order (Redis
/// cannot step beyond them).
fn page_cursor(page: &str, order: Order) -> ApiResult<Cursor> {
    let invalid = || ApiError::field("page", "invalid page cursor");
    let cursor = page.parse::<Cursor>().map_err(|_| invalid())?;
    let past_the_end = match order {
        Order::Asc => cursor == Cursor::new(u64::MAX, u64::MAX),
        Order::Desc => cursor == Cursor::START,
    };
    if past_the_end {
        return Err(invalid());
    }
    Ok(cursor)
}

/// A send body holds `events` only (the events themselves are checked by `parse_send_events`).
fn refuse_unknown_top_level(body: &[u8]) -> ApiResult<()> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SendBody {
        #[serde(rename = "events")]
        _events: serde::de::IgnoredAny,
    }
    match crate::body::parse::<SendBody>(body) {
        Err(err) if err.message.ends_with("Extra inputs are not permitted") => Err(err),
        // Anything else (a missing `events`, bad JSON) is for `parse_send_events` to name.
        _ => Ok(()),
    }
}

/// What a list keeps: `created_at` bounds, `types[]`, and the order that tells where the bounds end the scan.
struct Filter<'a> {
    range: TimeRange,
    types: Vec<&'a str>,
    order: Order,
}

impl Filter<'_> {
    fn matches(&self, e: &StoredEvent) -> bool {
        self.range.contains(e.cursor.time())
            && (self.types.is_empty() || self.types.contains(&e.event.type_name()))
    }

    /// Whether `e` and every event after it in the scan's order are outside the range.
    fn beyond(&self, e: &StoredEvent) -> bool {
        match self.order {
            Order::Asc => self.range.is_past(e.cursor.time()),
            Order::Desc => self.range.is_before(e.cursor.time()),
        }
    }
}

/// Reads the log from `after` in `order` until `limit` events match, the log or the range ends, or `max_scanned`
/// entries were read; answers the matching events and the cursor to continue from (`None` when nothing is left).
async fn scan(
    log: &corral_session::SessionLog,
    mut after: Option<Cursor>,
    order: LogOrder,
    filter: &Filter<'_>,
    limit: usize,
    max_scanned: usize,
) -> corral_session::Result<(Vec<Value>, Option<Cursor>)> {
    let batch = limit.clamp(100, MAX_LIMIT).min(max_scanned.max(1));
    let mut data = Vec::new();
    let mut scanned = 0;
    loop {
        let chunk = log.range(after, batch, order).await?;
        let mut events = chunk.events.into_iter();
        while let Some(event) = events.next() {
            if filter.beyond(&event) {
                return Ok((data, None));
            }
            scanned += 1;
            if filter.matches(&event) {
                data.push(event_json(&event));
                if data.len() == limit {
                    let more =
                        events.any(|e| !filter.beyond(&e) && filter.matches(&e)) || chunk.next.is_some();
                    return Ok((data, more.then_some(event.cursor)));
                }
            }
            if scanned >= max_scanned {
                let more = events.len() > 0 || chunk.next.is_some();
                return Ok((data, more.then_some(event.cursor)));
            }
        }
        match chunk.next {
            Some(cursor) => after = Some(cursor),
            None => return Ok((data, None)),
        }
    }
}

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

/// The header a client sets to make a send safe to retry: a repeat within the session log's idempotency window
/// stores nothing and answers the first send's events.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The request's `Idempotency-Key`, if it sent one: visible ASCII, at most 255 characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid(format!(
            "Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        ))
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key))
}

/// A stored event as the API shows it: without the private trace context [`with_trace`] stored with it.
fn without_trace(mut event: StoredEvent) -> StoredEvent {
    if let EventBody::Other(Value::Object(object)) = &event.event.body
        && object.contains_key("corral")
    {
        let mut object = object.clone();
        object.remove("corral");
        if let Ok(body) = serde_json::from_value(Value::Object(object)) {
            event.event.body = body;
        }
    }
    event
}

/// How long a send keeps asking Redis whether an append whose answer was lost (a timeout, a dropped connection)
/// landed, before it gives up with a 503.
pub const SETTLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Appends client events and, in the same atomic step, the harness's wake-up when one of them needs it; those that
/// wake the harness carry the current trace context. With an idempotency key, a repeat stores nothing and answers
/// the first append's events. Every append carries an idempotency key (a generated one when the client sent none),
/// so when its answer is lost it is repeated until Redis says whether it landed: an error then means nothing was
/// stored (see [`corral_session::SessionLog::append_user_events_settled`]). Answers the events as the API shows
/// them.
pub async fn append_traced(
    log: &corral_session::SessionLog,
    params: Vec<EventParam>,
    idempotency_key: Option<&str>,
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
    let appended = log
        .append_user_events_settled(to_store, idempotency_key, SETTLE_WITHIN)
        .await?;
    if appended.repeat {
        return Ok(appended.events.into_iter().map(without_trace).collect());
    }
    let mut stored = appended.events;
    for (event, body) in stored.iter_mut().zip(typed) {
        event.event.body = body;
    }
    Ok(stored)
}

/// `POST /v1/sessions/{session_id}/events`: validates, appends in order together with the wake-up, and answers the
/// stored events at once (`{"data": [...]}`). An `Idempotency-Key` header makes a retry store nothing twice. The
/// key's and tenant's byte budgets are charged from the body's `Content-Length` before any of it is read, so a
/// refused body costs the gateway nothing (a body without a length is charged once read).
#[tracing::instrument(name = "send_events", skip_all, fields(namespace = %tenant.namespace, session = %id))]
pub async fn send(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> ApiResult<Json<Value>> {
    let idempotency_key = idempotency_key(&headers)?;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let charge =
        async |bytes: usize| match state
            .limiter
            .check_bytes(&tenant.key_hash, &tenant.namespace, bytes)
        {
            Ok(()) => Ok(()),
            Err(wait) => {
                state.metrics.rate_limited.inc();
                crate::ratelimit::slow_down().await;
                Err(ApiError::rate_limited(wait))
            }
        };
    if let Some(length) = declared {
        charge(length).await?;
    }
    let body = read_body(request, state.settings.max_body_bytes).await?;
    if declared.is_none() {
        charge(body.len()).await?;
    }
    state.sessions.check(&state.kube, &tenant.namespace, &id).await?;
    refuse_unknown_top_level(&body)?;
    let params = parse_send_events(&body).map_err(|e| ApiError::field(&e.field, e.message))?;
    crate::attachments::check_files(&state, &tenant, &params, "events").await?;
    if let Some(policy) = &state.settings.approval
        && params
            .iter()
            .any(|p| matches!(p, EventParam::UserToolConfirmation(_)))
    {
        approval::authorize(&state.kube, policy, &headers, &tenant.namespace, &id).await?;
    }
    let stored = append_traced(
        &state.log.session(&tenant.namespace, &id),
        params,
        idempotency_key,
    )
    .await?;
    let data: Vec<Value> = stored.iter().map(event_json).collect();
    Ok(Json(json!({ "data": data })))
}

/// Reads a request's body, at most `max` bytes (the router's `DefaultBodyLimit`; over it: 413 naming the limit).
async fn read_body(request: axum::extract::Request, max: usize) -> ApiResult<Bytes> {
    use axum::extract::FromRequest as _;
    Bytes::from_request(request, &()).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            crate::body::cut_off(max)
        } else {
            ApiError::invalid(format!("body: could not be read: {}", rejection.body_text()))
        }
    })
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
        .map(|p| page_cursor(p, order))
        .transpose()?;
    state.sessions.check(&state.kube, &tenant.namespace, &id).await?;
    let log = state.log.session(&tenant.namespace, &id);
    let (log_order, after) = match order {
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
    // A filter naming only types Corral never writes matches nothing: answer without reading the log.
    if !types.is_empty() && types.iter().all(|t| !KNOWN_EVENT_TYPES.contains(t)) {
        return Ok(Json(json!({ "data": [], "next_page": null })));
    }
    let filter = Filter { range, types, order };
    let (data, next) = scan(&log, after, log_order, &filter, limit, MAX_SCANNED).await?;
    Ok(Json(
        json!({ "data": data, "next_page": next.map(|c| c.to_string()) }),
    ))
}

#[cfg(test)]
mod tests {
    use corral_session::{Config, Store, testing::RedisServer};

    use super::*;

    #[test]
    fn a_send_body_holds_events_only() {
        assert!(refuse_unknown_top_level(br#"{"events": []}"#).is_ok());
        assert!(
            refuse_unknown_top_level(b"{}").is_ok(),
            "parse_send_events names the missing field"
        );
        let err = refuse_unknown_top_level(br#"{"events": [], "stream": true}"#).unwrap_err();
        assert_eq!(err.message, "stream: Extra inputs are not permitted");
    }

    #[test]
    fn cursors_past_either_end_of_the_log_are_a_400() {
        let max = format!("{}-{}", u64::MAX, u64::MAX);
        let err = page_cursor(&max, Order::Asc).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.starts_with("page:"), "{}", err.message);
        assert_eq!(page_cursor("0-0", Order::Desc).unwrap_err().status, 400);
        // The same cursors are fine the other way round: they point at the start of the scan.
        assert!(page_cursor(&max, Order::Desc).is_ok());
        assert!(page_cursor("0-0", Order::Asc).is_ok());
        assert_eq!(
            page_cursor("18446744073709551616-0", Order::Asc)
                .unwrap_err()
                .status,
            400
        );
    }

    #[tokio::test]
    async fn a_filter_matching_nothing_reads_a_bounded_part_of_the_log() {
        let redis = RedisServer::start().expect("redis-server");
        let store = Store::connect(&redis.url(), Config::default())
            .await
            .expect("redis");
        let log = store.session("ns", "sesn-1");
        for _ in 0..5 {
            let batch = (0..50).map(|_| EventBody::UserInterrupt(Default::default()));
            log.append_user(batch).await.expect("append");
        }
        let filter = Filter {
            range: TimeRange::default(),
            types: vec!["agent.message"],
            order: Order::Asc,
        };
        let mut after = None;
        let mut requests = 0;
        loop {
            let (data, next) = scan(&log, after, LogOrder::Asc, &filter, 10, 120)
                .await
                .expect("scan");
            requests += 1;
            assert!(data.is_empty());
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(requests, 3, "250 events read 120 at a time");
        // What matches is still found across the bound, in order.
        let filter = Filter {
            types: vec!["user.interrupt"],
            ..filter
        };
        let (data, next) = scan(&log, None, LogOrder::Asc, &filter, 5, 120)
            .await
            .expect("scan");
        assert_eq!(data.len(), 5);
        assert!(next.is_some());
    }
}
