//! The harness's private fields, stored under the `corral` key of an event's JSON.
//!
//! | event | `corral` fields |
//! |---|---|
//! | `agent.thinking` | `thinking` (text), `signature` (optional), or `redacted` (opaque data) |
//! | `agent.thread_context_compacted` | `summary` (the summary text), `first_kept` (id of the first event kept verbatim) |
//! | `span.model_request_start` | `purpose`: `reply` (default) or `compaction` |
//! | `span.model_request_end` | `stop_reason`: the model's stop reason (`end_turn`, `tool_use`, `max_tokens`, `refusal`); `provider` and `model`; `cost_cents`: the request's estimated list cost in US cents (absent when the price table does not know the model) |
//!
//! The fields are never sent to API clients: the API's event types do not define them and drop them when read.

use corral_api::events::EventBody;
use serde_json::{Map, Value};

/// The key under which private fields are stored.
pub const KEY: &str = "corral";

/// An event body plus private fields, ready to append. Without fields it is the typed body unchanged.
pub fn with_hidden(body: EventBody, fields: Map<String, Value>) -> EventBody {
    if fields.is_empty() {
        return body;
    }
    match serde_json::to_value(&body) {
        Ok(Value::Object(mut object)) => {
            object.insert(KEY.to_owned(), Value::Object(fields));
            EventBody::Other(Value::Object(object))
        }
        // A typed body always serializes to an object; keep the body if it somehow did not.
        _ => body,
    }
}

/// Builds a private field map from pairs.
pub fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_api::events::Empty;

    #[test]
    fn hidden_fields_survive_in_the_stored_json_but_not_in_the_typed_body() {
        let body = with_hidden(
            EventBody::AgentThinking(Empty {}),
            fields([("thinking", Value::from("secret plan"))]),
        );
        assert_eq!(body.type_name(), "agent.thinking");
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains("secret plan"), "{json}");
        let typed: EventBody = serde_json::from_str(&json).unwrap();
        assert_eq!(typed, EventBody::AgentThinking(Empty {}));
        assert!(!serde_json::to_string(&typed).unwrap().contains("secret"));
    }
}
