//! A session's usage for people: active time, tokens and estimated cost, from the Session object's `stats` and
//! `usage`.

use serde_json::Value;

/// `stats.active_seconds` as `12.345s`, `-` when absent.
pub fn active(session: &Value) -> String {
    match session.pointer("/stats/active_seconds").and_then(Value::as_f64) {
        Some(s) => format!("{s:.3}s"),
        None => "-".into(),
    }
}

/// Every kind of token of `usage`, summed (`-` when the session has none).
pub fn tokens(session: &Value) -> String {
    let n = |p: &str| session.pointer(p).and_then(Value::as_u64);
    let parts = [
        n("/usage/input_tokens"),
        n("/usage/output_tokens"),
        n("/usage/cache_read_input_tokens"),
        n("/usage/cache_creation/ephemeral_5m_input_tokens"),
        n("/usage/cache_creation/ephemeral_1h_input_tokens"),
    ];
    if parts.iter().all(Option::is_none) {
        return "-".into();
    }
    parts.iter().flatten().sum::<u64>().to_string()
}

/// `usage.list_cost` (cents) in dollars, `$0.0204`; `-` when the cost is unknown.
pub fn cost(session: &Value) -> String {
    let cents = session
        .pointer("/usage/list_cost/amount")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<f64>().ok());
    match cents {
        Some(c) => format!("${:.4}", c / 100.0),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_cells() {
        let s = json!({
            "stats": {"active_seconds": 3.1},
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                      "cache_creation": {"ephemeral_5m_input_tokens": 1},
                      "list_cost": {"amount": "2.04", "currency": "USD"}}
        });
        assert_eq!(active(&s), "3.100s");
        assert_eq!(tokens(&s), "116");
        assert_eq!(cost(&s), "$0.0204");
        let empty = json!({"stats": {}, "usage": {}});
        assert_eq!(
            (active(&empty), tokens(&empty), cost(&empty)),
            ("-".into(), "-".into(), "-".into())
        );
    }
}
