//! `GET /v1/sessions/{id}/events/stream`: the session's events as Server-Sent Events.
//!
//! Each message is `event: <type>`, `id: <cursor>`, `data: <event JSON>`. Idle streams get `event: ping` every
//! keep-alive interval. The stream stays open across turns and ends after `session.status_terminated` or
//! `session.deleted`. A client that reconnects with `Last-Event-ID: <cursor>` (or `?after=<cursor>`) receives every
//! event after that cursor exactly once, in log order; without one, the stream starts with the next event. On
//! shutdown the stream ends with a `: shutting down` comment line.

use std::time::Duration;

use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use corral_api::{Session, session::SessionPhase};
use corral_session::{Cursor, SharedEvent};
use futures::Stream;
use prometheus_client::metrics::gauge::Gauge;

use super::objects::{self, api};
use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    query::Query,
    ratelimit::StreamSlot,
    request_id,
    state::AppState,
};

/// Decrements the SSE clients gauge when the stream is dropped (client gone or stream ended), and frees the key's
/// place among its open streams.
struct ClientGuard {
    gauge: Gauge,
    _slot: StreamSlot,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The SSE message of an event; its JSON is made once for every stream of the log (see [`SharedEvent::json`]).
fn sse_event(event: &SharedEvent) -> SseEvent {
    let stored = event.stored();
    SseEvent::default()
        .event(stored.event.type_name())
        .id(stored.cursor.to_string())
        .data(event.json())
}

/// The resume point: `Last-Event-ID`, else `?after=`.
fn resume_cursor(headers: &HeaderMap, query: &Query) -> ApiResult<Option<Cursor>> {
    let header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (header, query.get("after").filter(|v| !v.is_empty())) {
        (Some(v), _) => v.parse().map(Some).map_err(|_| {
            ApiError::field(
                "Last-Event-ID",
                format!("{v:?} is not an event cursor from this stream"),
            )
        }),
        (None, Some(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::field("after", format!("{v:?} is not an event cursor"))),
        (None, None) => Ok(None),
    }
}

/// `GET /v1/sessions/{session_id}/events/stream`.
pub async fn stream(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(query.as_deref());
    let after = resume_cursor(&headers, &query)?;
    let session = objects::get(&api::<Session>(&state, &tenant), "session", &id).await?;
    let terminated = session.status.as_ref().and_then(|s| s.phase) == Some(SessionPhase::Terminated);
    let slot = state.limiter.open_stream(&tenant.key_hash).map_err(|max| {
        state.metrics.rate_limited.inc();
        let mut err = ApiError::rate_limited(1);
        err.message =
            format!("this API key holds {max} open event streams, the most it may; close one first");
        err
    })?;
    let log = state.log.session(&tenant.namespace, &id);
    if let Some(cursor) = after {
        // A cursor past the log's end was never this stream's (the log is never trimmed): following from it would
        // skip what comes next, and hold the follow hub's read of the log at a point in the future.
        let last = log.last_cursor().await?;
        if cursor > Cursor::START && last.is_none_or(|last| cursor > last) {
            return Err(ApiError::field(
                "after",
                format!(
                    "{cursor} is past the end of this session's log: it is no event cursor of this stream"
                ),
            ));
        }
    }
    let follower = log.follow(after).await?;
    state.metrics.sse_clients.inc();
    let guard = ClientGuard {
        gauge: state.metrics.sse_clients.clone(),
        _slot: slot,
    };
    // Nothing follows the end of a terminated session: without a cursor to replay from, the stream ends at once
    // (with a cursor, it replays what came after it, through the terminal event).
    let events = events(
        state.clone(),
        tenant.key_hash.clone(),
        tenant.namespace.clone(),
        follower,
        guard,
        terminated && after.is_none(),
    );
    let keep_alive = KeepAlive::new()
        .interval(state.settings.keep_alive)
        .event(SseEvent::default().event("ping").data("{}"));
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn events(
    state: AppState,
    key: String,
    namespace: String,
    mut follower: corral_session::Follower,
    guard: ClientGuard,
    finished: bool,
) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> + Send + 'static {
    async_stream::stream! {
        let _guard = guard;
        let shutdown = state.shutdown.clone();
        let mut failures = 0u32;
        loop {
            if finished {
                break;
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    yield Ok(SseEvent::default().comment("shutting down"));
                    break;
                }
                next = follower.next_shared() => match next {
                    Ok(event) => {
                        failures = 0;
                        state.metrics.sse_events.inc();
                        let terminal = event.stored().event.body.ends_stream();
                        // The key's and the tenant's fan-out budgets: many streams of large events slow down, others
                        // don't notice.
                        tokio::select! {
                            biased;
                            () = shutdown.cancelled() => {
                                yield Ok(SseEvent::default().comment("shutting down"));
                                break;
                            }
                            () = state.limiter.stream_send(&key, &namespace, event.json().len()) => {}
                        }
                        yield Ok(sse_event(&event));
                        if terminal {
                            break;
                        }
                    }
                    Err(err) if err.is_transient() && failures < 5 => {
                        // The follower reconnects on its next call and resumes after the last event it returned.
                        failures += 1;
                        tracing::warn!(error = %err, attempt = failures, "session log follow failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(1u32 << failures))).await;
                    }
                    Err(err) => {
                        let error = ApiError::from(err);
                        let body = error.body(&request_id::new_id()).to_string();
                        yield Ok(SseEvent::default().event("error").data(body));
                        break;
                    }
                },
            }
        }
    }
}
