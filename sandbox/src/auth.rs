//! Bearer-token authentication: no token, no tool.

use axum::{
    extract::{Request, State},
    http::header::AUTHORIZATION,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The expected token, kept as a digest so comparisons take the same time whatever the candidate's length.
#[derive(Clone)]
pub struct TokenCheck {
    digest: [u8; 32],
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck(..)")
    }
}

impl TokenCheck {
    /// Accepts exactly `token`.
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `candidate` is the token, compared in constant time.
    pub fn accepts(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Middleware that answers 401 unless `Authorization: Bearer <token>` is right.
pub async fn require_token(State(check): State<TokenCheck>, request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).map(|v| v.to_str());
    let token = match header {
        None => {
            return ApiError::unauthenticated("missing Authorization: Bearer <token> header").into_response();
        }
        Some(Err(_)) => {
            return ApiError::unauthenticated("the Authorization header is not valid text").into_response();
        }
        Some(Ok(value)) => match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
                    .into_response();
            }
        },
    };
    if !check.accepts(token) {
        return ApiError::unauthenticated("invalid token").into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let check = TokenCheck::new("0123456789abcdef");
        assert!(check.accepts("0123456789abcdef"));
        assert!(!check.accepts("0123456789abcdeF"));
        assert!(!check.accepts(""));
        assert!(!check.accepts("0123456789abcdef0"));
    }
}
