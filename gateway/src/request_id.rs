//! Every response carries a `request-id` header; error responses carry the API's envelope with the same id.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

/// The header naming the request, read by the SDKs as `request_id`.
pub const REQUEST_ID: &str = "request-id";

/// A new request id: `req_` and a ULID.
pub fn new_id() -> String {
    format!("req_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

/// Middleware: assigns the id, and turns every error response into the envelope carrying it (errors of the
/// handlers, and those axum makes itself: unknown route, wrong method, body too large).
pub async fn assign(request: Request, next: Next) -> Response {
    let id = new_id();
    let response = next.run(request).await;
    let status = response.status();
    let mut response = if status.is_client_error() || status.is_server_error() {
        let error = response
            .extensions()
            .get::<ApiError>()
            .cloned()
            .unwrap_or_else(|| ApiError::for_status(status));
        let (mut parts, _) = response.into_parts();
        let body = error.body(&id).to_string();
        parts
            .headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        parts.headers.remove(header::CONTENT_LENGTH);
        if status.is_server_error() {
            tracing::warn!(request_id = %id, status = status.as_u16(), "request failed");
        }
        Response::from_parts(parts, Body::from(body)).into_response()
    } else {
        response
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
