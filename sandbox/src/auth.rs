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

    /// Accepts the token whose SHA-256 is `hex` (64 hex characters): how a sandbox pod is configured, so the
    /// token itself is nowhere in the pod's spec or environment.
    pub fn from_sha256_hex(hex: &str) -> Result<Self, String> {
        let hex = hex.trim();
        let bad = || {
            format!(
                "the token digest must be 64 hex characters (a SHA-256), got {} characters",
                hex.len()
            )
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self { digest })
    }

    /// The accepted token's SHA-256 in lowercase hex, which the open identity route tells (it lets nobody in).
    pub fn sha256_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn a_digest_configures_the_same_check_as_its_token() {
        let token = "0123456789abcdef";
        let digest = corral_sandbox_protocol::pod::token_sha256(token);
        let check = TokenCheck::from_sha256_hex(&digest).unwrap();
        assert!(check.accepts(token));
        assert!(!check.accepts(&digest), "the digest itself is no token");
        assert_eq!(check.sha256_hex(), digest);
        assert_eq!(TokenCheck::new(token).sha256_hex(), digest);
        for bad in [
            "",
            "abc",
            &digest[..63],
            &format!("{}zz", &digest[..62]),
            &"é".repeat(32),
        ] {
            assert!(TokenCheck::from_sha256_hex(bad).is_err(), "{bad:?}");
        }
    }
}
