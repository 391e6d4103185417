//! The API's error envelope: `{"type":"error","error":{"type","message","details"?},"request_id"}` with the status
//! codes of the Managed Agents API.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// An error answered with the API's envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// `error.type`: `invalid_request_error`, `not_found_error`, ...
    pub kind: &'static str,
    /// `error.message`, for people.
    pub message: String,
    /// `error.details.error_code`, when there is one.
    pub error_code: Option<&'static str>,
    /// Seconds to put in `retry-after` (429).
    pub retry_after: Option<u64>,
    /// Whether the session log (Redis) failed: counted in `corral_gateway_redis_errors_total`.
    pub session_log_failure: bool,
}

/// A result whose error is answered with the envelope.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            error_code: None,
            retry_after: None,
            session_log_failure: false,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 `invalid_request_error` naming the offending field: `"<field>: <message>"`.
    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::invalid(format!("{field}: {message}"))
    }

    /// 401 `authentication_error`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    /// 403 `permission_error`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    /// 404 `not_found_error`.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("{what} {id:?} not found"),
        )
    }

    /// 409 `conflict_error` (never retried: the envelope carries `x-should-retry: false`).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict_error", message)
    }

    /// 409 `memory_precondition_failed_error`: a memory's content is not the one a write expected (never retried).
    pub fn memory_precondition_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "memory_precondition_failed_error", message)
    }

    /// 409 `memory_path_conflict_error`: another memory of the store has the path (never retried).
    pub fn memory_path_conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "memory_path_conflict_error", message)
    }

    /// 429 `rate_limit_error` with `retry-after`.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate limit exceeded for this API key",
            )
        }
    }

    /// 500 `api_error`. The cause is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal error; the request id identifies it in the gateway's logs",
        )
    }

    /// 503 `overloaded_error`: a dependency (Kubernetes, Redis) is unavailable.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded_error",
            format!("a backing service is unavailable, retry later: {cause}"),
        )
    }

    /// Prefixes the message with the request field it is about: `"<field>: <message>"`.
    pub fn with_field_prefix(mut self, field: &str) -> Self {
        self.message = format!("{field}: {}", self.message);
        self
    }

    /// Adds `error.details.error_code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.error_code = Some(code);
        self
    }

    /// The generic envelope for a status produced outside the handlers (unknown route, wrong method, body too large).
    pub fn for_status(status: StatusCode) -> Self {
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            408 => "timeout_error",
            409 => "conflict_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        };
        let message = match status {
            StatusCode::NOT_FOUND => "no such endpoint".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this endpoint".to_owned(),
            StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_owned(),
            other => other.canonical_reason().unwrap_or("request failed").to_owned(),
        };
        Self::new(status, kind, message)
    }

    /// The envelope's JSON.
    pub fn body(&self, request_id: &str) -> Value {
        let mut error = json!({ "type": self.kind, "message": self.message });
        if let Some(code) = self.error_code {
            error["details"] = json!({ "error_code": code });
        }
        json!({ "type": "error", "error": error, "request_id": request_id })
    }
}

impl IntoResponse for ApiError {
    /// The body is written without a request id; the request-id layer rewrites it with the id (it finds the error in
    /// the response's extensions).
    fn into_response(self) -> Response {
        let body = self.body("").to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status == StatusCode::CONFLICT {
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<kube::Error> for ApiError {
    fn from(err: kube::Error) -> Self {
        match &err {
            kube::Error::Api(status) if status.code == 409 => {
                Self::conflict(format!("the object changed concurrently: {}", status.message))
            }
            kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
                Self::invalid(format!("rejected by the Kubernetes API: {}", status.message))
            }
            kube::Error::Api(status) if status.code == 404 => {
                Self::new(StatusCode::NOT_FOUND, "not_found_error", status.message.clone())
            }
            kube::Error::Api(status) if status.code == 403 => Self::internal(format!(
                "the gateway's service account may not do this: {}",
                status.message
            )),
            kube::Error::Api(status) if status.code == 429 || status.code >= 500 => {
                Self::unavailable(format!("Kubernetes API: {}", status.message))
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                Self::unavailable(format!("Kubernetes API: {err}"))
            }
            _ => Self::internal(err),
        }
    }
}

impl From<corral_session::Error> for ApiError {
    fn from(err: corral_session::Error) -> Self {
        match err {
            corral_session::Error::InvalidCursor(c) => Self::invalid(format!("page: invalid cursor {c:?}")),
            corral_session::Error::InvalidArgument(m) => Self::invalid(m),
            corral_session::Error::EventTooLarge { index, size, limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("events[{index}]: the event is {size} bytes of JSON, over the limit of {limit} bytes per event"),
            )
            .with_code("event_too_large"),
            e @ corral_session::Error::SessionFull { .. } => {
                Self::invalid(format!("{e}; no more events can be sent to it")).with_code("session_log_full")
            }
            e @ corral_session::Error::OutOfMemory(_) => Self {
                session_log_failure: true,
                ..Self::unavailable(format!("session log: {e}")).with_code("session_log_out_of_memory")
            },
            e if e.is_transient() => Self {
                session_log_failure: true,
                ..Self::unavailable(format!("session log: {e}"))
            },
            e => Self {
                session_log_failure: true,
                ..Self::internal(e)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_sdk_shape() {
        let err = ApiError::not_found("environment", "env-x").with_code("environment_not_found");
        let body = err.body("req_1");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "not_found_error");
        assert_eq!(body["error"]["details"]["error_code"], "environment_not_found");
        assert_eq!(body["request_id"], "req_1");
        assert!(body["error"]["message"].as_str().unwrap().contains("env-x"));
    }

    #[test]
    fn conflicts_are_not_retried_and_rate_limits_say_when() {
        let res = ApiError::conflict("version mismatch").into_response();
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(res.headers()["x-should-retry"], "false");
        let res = ApiError::rate_limited(3).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["retry-after"], "3");
    }

    #[test]
    fn statuses_map_to_error_types() {
        assert_eq!(
            ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED).kind,
            "invalid_request_error"
        );
        assert_eq!(
            ApiError::for_status(StatusCode::NOT_FOUND).kind,
            "not_found_error"
        );
        assert_eq!(ApiError::for_status(StatusCode::BAD_GATEWAY).kind, "api_error");
    }
}
