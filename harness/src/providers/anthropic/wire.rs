//! The request body of `POST /v1/messages`.

use serde_json::{Map, Value, json};

use crate::providers::request::{Block, CacheHints, Message, ModelRequest, Role, Thinking};

/// The JSON body for a streamed Messages request.
pub(super) fn body(request: &ModelRequest) -> Value {
    let cache = request.cache;
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    body.insert("stream".into(), json!(true));
    if let Some(system) = request.system.as_deref().filter(|s| !s.trim().is_empty()) {
        let mut block = json!({"type": "text", "text": system});
        if cache.system {
            block["cache_control"] = cache_control(cache);
        }
        body.insert("system".into(), json!([block]));
    }
    if !request.tools.is_empty() {
        let last = request.tools.len() - 1;
        let tools: Vec<Value> = request
            .tools
            .iter()
            .enumerate()
            .map(|(i, tool)| {
                let mut def = json!({"name": tool.name, "input_schema": tool.input_schema});
                if !tool.description.is_empty() {
                    def["description"] = json!(tool.description);
                }
                if cache.tools && i == last {
                    def["cache_control"] = cache_control(cache);
                }
                def
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut messages: Vec<Value> = request.messages.iter().filter_map(message).collect();
    if cache.last_message
        && let Some(blocks) = messages.last_mut().and_then(|m| m["content"].as_array_mut())
        && let Some(block) = blocks.iter_mut().rev().find(|b| cacheable(b))
    {
        block["cache_control"] = cache_control(cache);
    }
    body.insert("messages".into(), Value::Array(messages));
    match request.thinking {
        Some(Thinking::Adaptive) => {
            body.insert("thinking".into(), json!({"type": "adaptive"}));
        }
        Some(Thinking::Budget { budget_tokens }) => {
            body.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget_tokens}),
            );
        }
        Some(Thinking::Disabled) => {
            body.insert("thinking".into(), json!({"type": "disabled"}));
        }
        None => {}
    }
    if let Some(effort) = request.effort {
        body.insert("output_config".into(), json!({"effort": effort}));
    }
    Value::Object(body)
}

fn cache_control(cache: CacheHints) -> Value {
    match cache.ttl {
        Some(ttl) => json!({"type": "ephemeral", "ttl": ttl.as_str()}),
        None => json!({"type": "ephemeral"}),
    }
}

/// Thinking blocks cannot carry `cache_control`.
fn cacheable(block: &Value) -> bool {
    !matches!(block["type"].as_str(), Some("thinking" | "redacted_thinking"))
}

/// One message, or `None` when nothing sendable is left (the API refuses empty content).
fn message(message: &Message) -> Option<Value> {
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let mut blocks: Vec<Value> = message.content.iter().filter_map(block).collect();
    if message.role == Role::User {
        // Tool results must come first in their message.
        blocks.sort_by_key(|b| b["type"] != "tool_result");
    }
    (!blocks.is_empty()).then(|| json!({"role": role, "content": blocks}))
}

fn block(block: &Block) -> Option<Value> {
    Some(match block {
        // The API refuses empty or whitespace-only text blocks.
        Block::Text { text } if text.trim().is_empty() => return None,
        Block::Text { text } => json!({"type": "text", "text": text}),
        Block::Image { media_type, data } => image(media_type, data),
        Block::Document {
            media_type,
            data,
            title,
        } => document(media_type, data, title.as_deref()),
        Block::Thinking { thinking, signature } => {
            json!({"type": "thinking", "thinking": thinking, "signature": signature.as_deref().unwrap_or("")})
        }
        Block::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
        Block::ToolUse { id, name, input } => {
            let input = if input.is_object() {
                input.clone()
            } else {
                json!({})
            };
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let content: Vec<Value> = content
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text } if !text.trim().is_empty() => {
                        Some(json!({"type": "text", "text": text}))
                    }
                    Block::Image { media_type, data } => Some(image(media_type, data)),
                    Block::Document {
                        media_type,
                        data,
                        title,
                    } => Some(document(media_type, data, title.as_deref())),
                    _ => None,
                })
                .collect();
            let mut result = json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
            if *is_error {
                result["is_error"] = json!(true);
            }
            result
        }
    })
}

fn image(media_type: &str, data: &str) -> Value {
    json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
}

fn document(media_type: &str, data: &str, title: Option<&str>) -> Value {
    let mut out =
        json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}});
    if let Some(title) = title {
        out["title"] = json!(title);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::request::{CacheTtl, ToolDefinition};

    #[test]
    fn cache_breakpoints_land_on_system_last_tool_and_last_message() {
        let mut request = ModelRequest::new("m", 100, vec![Message::user_text("hi")]);
        request.system = Some("be brief".into());
        request.tools = vec![
            ToolDefinition {
                name: "a".into(),
                description: String::new(),
                input_schema: json!({"type": "object"}),
            },
            ToolDefinition {
                name: "b".into(),
                description: "B".into(),
                input_schema: json!({"type": "object"}),
            },
        ];
        request.cache = CacheHints {
            ttl: Some(CacheTtl::OneHour),
            ..CacheHints::agent_loop()
        };
        let body = body(&request);
        let breakpoint = json!({"type": "ephemeral", "ttl": "1h"});
        assert_eq!(body["system"][0]["cache_control"], breakpoint);
        assert!(body["tools"][0].get("cache_control").is_none());
        assert_eq!(body["tools"][1]["cache_control"], breakpoint);
        assert_eq!(body["messages"][0]["content"][0]["cache_control"], breakpoint);
        assert_eq!(body["stream"], json!(true));
    }

    #[test]
    fn tool_results_go_first_and_blank_text_is_dropped() {
        let request = ModelRequest::new(
            "m",
            100,
            vec![
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Block::Text { text: "\n\n".into() },
                        Block::ToolUse {
                            id: "t1".into(),
                            name: "bash".into(),
                            input: json!({"command": "ls"}),
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Block::Text {
                            text: "and then?".into(),
                        },
                        Block::ToolResult {
                            tool_use_id: "t1".into(),
                            content: vec![Block::Text { text: "boom".into() }],
                            is_error: true,
                        },
                    ],
                },
            ],
        );
        let body = body(&request);
        let assistant = body["messages"][0]["content"].as_array().expect("blocks");
        assert_eq!(assistant.len(), 1);
        assert_eq!(assistant[0]["type"], "tool_use");
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_result");
        assert_eq!(body["messages"][1]["content"][0]["is_error"], json!(true));
        assert_eq!(body["messages"][1]["content"][1]["text"], "and then?");
    }

    #[test]
    fn a_pdf_is_a_base64_document_block_with_its_title() {
        let pdf = Block::Document {
            media_type: "application/pdf".into(),
            data: "JVBE".into(),
            title: Some("Q3".into()),
        };
        assert_eq!(
            block(&pdf).unwrap(),
            json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}, "title": "Q3"})
        );
        let result = Block::ToolResult {
            tool_use_id: "t".into(),
            content: vec![pdf],
            is_error: false,
        };
        assert_eq!(block(&result).unwrap()["content"][0]["type"], "document");
    }
}
