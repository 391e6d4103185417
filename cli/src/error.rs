//! The CLI's errors: one clear line each, and the exit code that goes with it.

use std::fmt;

/// Exit code of a command that failed for a reason not listed below (the API's 4xx/5xx, a network error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of bad input: wrong flags, an unreadable or invalid file (clap uses 2 for usage errors too).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the gateway URL or API key is not configured.
pub const EXIT_CONFIG: i32 = 3;
/// Exit code when the API refuses the key (401, 403).
pub const EXIT_AUTH: i32 = 4;
/// Exit code when the API answers 404.
pub const EXIT_NOT_FOUND: i32 = 5;
/// Exit code when the user interrupted the command (Ctrl-C twice in `chat`).
pub const EXIT_INTERRUPTED: i32 = 130;

/// An error of the API: its envelope, status and request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error.type`, such as `not_found_error`.
    pub kind: String,
    /// `error.message`.
    pub message: String,
    /// `error.details.error_code` (Corral's finer reason, such as `file_too_large`), when given.
    pub code: Option<String>,
    /// `request_id` of the body, else the `request-id` header.
    pub request_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {} {}", self.message, self.status, self.kind)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, ", request-id {id}")?;
        }
        f.write_str(")")
    }
}

/// Every way a command can fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// The gateway could not be reached or the connection broke.
    #[error("{0}")]
    Network(String),
    /// Missing configuration (URL, key).
    #[error("{0}")]
    Config(String),
    /// Bad input from the user: a file, a flag value.
    #[error("{0}")]
    Input(String),
    /// Standard output was closed (a pipe's reader quit): stop quietly.
    #[error("standard output closed")]
    Closed,
    /// The user stopped the command.
    #[error("interrupted")]
    Interrupted,
    /// Anything else (I/O on the terminal, an answer the CLI cannot read).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Api(e) => match e.status {
                401 | 403 => EXIT_AUTH,
                404 => EXIT_NOT_FOUND,
                _ => EXIT_FAILURE,
            },
            Self::Config(_) => EXIT_CONFIG,
            Self::Input(_) => EXIT_USAGE,
            Self::Interrupted => EXIT_INTERRUPTED,
            Self::Network(_) | Self::Other(_) => EXIT_FAILURE,
            Self::Closed => 0,
        }
    }

    /// A hint printed after the error line, when there is something the user can do.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Api(e) if e.status == 401 => Some(
                "check the key: --api-key, CORRAL_API_KEY or `corral config set api-key` (make one with `corral-gateway create-key`)",
            ),
            _ => None,
        }
    }
}

/// Shorthand for results of commands.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> CliError {
        CliError::Api(ApiError {
            status,
            kind: "x".into(),
            message: "m".into(),
            code: None,
            request_id: Some("req_1".into()),
        })
    }

    #[test]
    fn exit_codes_tell_the_kind_of_failure() {
        assert_eq!(api(401).exit_code(), EXIT_AUTH);
        assert_eq!(api(404).exit_code(), EXIT_NOT_FOUND);
        assert_eq!(api(400).exit_code(), EXIT_FAILURE);
        assert_eq!(api(500).exit_code(), EXIT_FAILURE);
        assert_eq!(CliError::Config("x".into()).exit_code(), EXIT_CONFIG);
        assert_eq!(CliError::Input("x".into()).exit_code(), EXIT_USAGE);
        assert!(api(401).hint().is_some());
        assert!(api(404).hint().is_none());
    }

    #[test]
    fn api_errors_print_as_one_line_with_the_request_id() {
        let line = api(404).to_string();
        assert_eq!(line, "m (HTTP 404 x, request-id req_1)");
        assert!(!line.contains('\n'));
    }
}
