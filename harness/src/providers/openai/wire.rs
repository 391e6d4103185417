//! The request body of `POST /chat/completions`, converted from the provider-neutral request.

use serde_json::{Map, Value, json};

use super::{Dialect, MaxTokensField};
use crate::providers::request::{Block, Message, ModelRequest, Role};

/// The JSON body for a streamed chat completions request.
pub(super) fn body(request: &ModelRequest, dialect: Dialect) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("stream".into(), json!(true));
    if dialect.stream_usage {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let max_field = match dialect.max_tokens_field {
        MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        MaxTokensField::MaxTokens => "max_tokens",
    };
    body.insert(max_field.into(), json!(request.max_tokens));
    let mut messages = Vec::new();
    if let Some(system) = request.system.as_deref().filter(|s| !s.trim().is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        convert(message, &mut messages);
    }
    body.insert("messages".into(), Value::Array(messages));
    // vLLM refuses `tools: []`, so send the key only with tools.
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = json!({"name": tool.name, "parameters": tool.input_schema});
                if !tool.description.is_empty() {
                    function["description"] = json!(tool.description);
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if dialect.reasoning_effort
        && let Some(effort) = request.effort
    {
        body.insert("reasoning_effort".into(), json!(effort));
    }
    Value::Object(body)
}

/// Appends the chat messages for one neutral message: an assistant message with its tool calls (thinking is
/// dropped: chat completions has nowhere to put it), or one `tool` message per tool result followed by a user
/// message with the rest (images of tool results move there, since `tool` messages hold text only).
fn convert(message: &Message, out: &mut Vec<Value>) {
    match message.role {
        Role::Assistant => {
            let text = joined_text(&message.content);
            let calls: Vec<Value> = message
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolUse { id, name, input } => Some(json!({
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": input.to_string()},
                    })),
                    _ => None,
                })
                .collect();
            if text.is_empty() && calls.is_empty() {
                return;
            }
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            out.push(msg);
        }
        Role::User => {
            let mut parts = Vec::new();
            for block in &message.content {
                match block {
                    Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => {
                        let mut text = joined_text(content);
                        if *is_error {
                            text = format!("Error: {text}");
                        }
                        out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
                        parts.extend(content.iter().filter_map(media_part));
                    }
                    Block::Text { text } if !text.trim().is_empty() => {
                        parts.push(json!({"type": "text", "text": text}));
                    }
                    other => parts.extend(media_part(other)),
                }
            }
            if parts.is_empty() {
                return;
            }
            let only_text = parts.iter().all(|p| p["type"] == "text");
            let content = if only_text {
                json!(
                    parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n\n")
                )
            } else {
                Value::Array(parts)
            };
            out.push(json!({"role": "user", "content": content}));
        }
    }
}

fn joined_text(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text } if !text.trim().is_empty() => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// An image as an `image_url` part, a document as a `file` part (both as data URLs).
fn media_part(block: &Block) -> Option<Value> {
    match block {
        Block::Image { media_type, data } => Some(
            json!({"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}}),
        ),
        Block::Document {
            media_type,
            data,
            title,
        } => Some(json!({"type": "file", "file": {
            "filename": title.as_deref().unwrap_or("document.pdf"),
            "file_data": format!("data:{media_type};base64,{data}"),
        }})),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::request::{Effort, ToolDefinition};

    #[test]
    fn tool_round_trip_and_dialects() {
        let mut request = ModelRequest::new(
            "qwen",
            512,
            vec![
                Message::user_text("list files"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Block::Thinking {
                            thinking: "hmm".into(),
                            signature: None,
                        },
                        Block::ToolUse {
                            id: "call_1".into(),
                            name: "bash".into(),
                            input: json!({"command": "ls"}),
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "call_1".into(),
                        content: vec![Block::Text {
                            text: "no such dir".into(),
                        }],
                        is_error: true,
                    }],
                },
            ],
        );
        request.system = Some("sys".into());
        request.effort = Some(Effort::High);
        let body = body(&request, Dialect::compatible());
        assert_eq!(body["max_tokens"], json!(512));
        assert!(body.get("tools").is_none(), "no empty tools list");
        assert!(body.get("reasoning_effort").is_none());
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0], json!({"role": "system", "content": "sys"}));
        assert_eq!(messages[2]["content"], Value::Null);
        assert_eq!(
            messages[2]["tool_calls"][0]["function"]["arguments"],
            json!("{\"command\":\"ls\"}")
        );
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "Error: no such dir"})
        );

        request.tools = vec![ToolDefinition {
            name: "bash".into(),
            description: String::new(),
            input_schema: json!({}),
        }];
        let body = super::body(&request, Dialect::openai());
        assert_eq!(body["max_completion_tokens"], json!(512));
        assert_eq!(body["reasoning_effort"], json!("high"));
        assert_eq!(body["tools"][0]["function"]["name"], json!("bash"));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn a_pdf_is_a_file_part_with_a_data_url() {
        let part = media_part(&Block::Document {
            media_type: "application/pdf".into(),
            data: "JVBE".into(),
            title: None,
        })
        .unwrap();
        assert_eq!(
            part,
            json!({"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}})
        );
    }
}
