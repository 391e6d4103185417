//! Request parts no handler reads, refused by name instead of ignored: the `anthropic-workspace-id` header (an API
//! key's namespace is its only workspace) and the `event_deltas` of a stream (Corral streams whole events).

use axum::{extract::Request, middleware::Next, response::IntoResponse, response::Response};

use crate::error::ApiError;

/// The header the SDKs send for `workspace_id`.
pub const WORKSPACE_HEADER: &str = "anthropic-workspace-id";

/// Middleware: a 400 naming what Corral would otherwise ignore; every other request passes.
pub async fn refuse(request: Request, next: Next) -> Response {
    match check(&request) {
        Some(err) => err.into_response(),
        None => next.run(request).await,
    }
}

fn check(request: &Request) -> Option<ApiError> {
    if request.headers().contains_key(WORKSPACE_HEADER) {
        return Some(ApiError::field(
            "workspace_id",
            format!(
                "Corral has no workspaces (an API key's namespace is its workspace); do not send the {WORKSPACE_HEADER} header"
            ),
        ));
    }
    let deltas = request.uri().path().ends_with("/events/stream")
        && request.uri().query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k.starts_with("event_deltas"))
        });
    deltas.then(|| {
        ApiError::field(
            "event_deltas",
            "streaming deltas are not supported by Corral yet; the stream carries whole events",
        )
    })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn request(uri: &str, header: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(h) = header {
            builder = builder.header(h, "wrkspc_1");
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn refuses_the_workspace_header_and_stream_deltas_by_name() {
        let err = check(&request("/v1/agents", Some(WORKSPACE_HEADER))).unwrap();
        assert!(err.message.starts_with("workspace_id:"), "{}", err.message);
        let err = check(&request("/v1/sessions/s/events/stream?event_deltas[]=text", None)).unwrap();
        assert!(err.message.starts_with("event_deltas:"), "{}", err.message);
        assert!(check(&request("/v1/sessions/s/events/stream?after=1", None)).is_none());
        assert!(check(&request("/v1/agents?event_deltas=x", None)).is_none());
    }
}
