//! Errors as people read them: an error with every cause behind it on one line.

/// `error`, then each of its causes (`source()`), joined by `": "`: the innermost cause of a failed request (a
/// refused connection, a resolver's refusal) is usually the part worth reading.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_cause_is_on_the_line() {
        let err = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&err), "request failed: connection refused");
    }
}
