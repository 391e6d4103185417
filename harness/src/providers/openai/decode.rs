//! Decoding chat completion chunks (`data: {...}` events, ending with `data: [DONE]`) into provider-neutral events,
//! tolerating what compatible servers do differently: usage missing, late or repeated; tool call ids missing,
//! repeated or regenerated per fragment; `index` missing; arguments split anywhere, sent as objects or
//! double-encoded; reasoning under `reasoning` or `reasoning_content`; no `[DONE]` at all.

use std::collections::{BTreeMap, HashSet};

use eventsource_stream::Event;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::providers::error::ProviderError;
use crate::providers::event::{ProviderEvent, StopReason, ToolCall, ToolInput, Usage};
use crate::providers::http::{Decoder, plain_status_message};

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<Fragment>>,
}

#[derive(Deserialize)]
struct Fragment {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionFragment>,
}

#[derive(Deserialize)]
struct FunctionFragment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

impl WireUsage {
    /// Anthropic's meaning: `prompt_tokens` includes cached tokens, our `input_tokens` does not.
    fn normalize(&self) -> Usage {
        let details = self.prompt_tokens_details.as_ref();
        let cache_read = details.and_then(|d| d.cached_tokens).unwrap_or(0);
        let cache_write = details.and_then(|d| d.cache_write_tokens).unwrap_or(0);
        Usage {
            input_tokens: self
                .prompt_tokens
                .unwrap_or(0)
                .saturating_sub(cache_read + cache_write),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_read_input_tokens: cache_read,
            cache_creation_input_tokens: cache_write,
        }
    }
}

#[derive(Default)]
struct ToolAcc {
    block: usize,
    id: String,
    name: String,
    args: String,
    started: bool,
}

/// State of one reply being decoded.
#[derive(Default)]
pub(super) struct OpenAiDecoder {
    next_block: usize,
    text: Option<(usize, String)>,
    reasoning: Option<(usize, String)>,
    tools: BTreeMap<u32, ToolAcc>,
    ids: HashSet<String>,
    finish: Option<String>,
    refused: bool,
    usage: Option<Usage>,
    done: bool,
}

impl OpenAiDecoder {
    fn block(&mut self) -> usize {
        self.next_block += 1;
        self.next_block - 1
    }

    fn close_reasoning(&mut self, out: &mut Vec<ProviderEvent>) {
        if let Some((index, thinking)) = self.reasoning.take() {
            out.push(ProviderEvent::ThinkingComplete {
                index,
                thinking,
                signature: None,
            });
        }
    }

    fn close_text(&mut self, out: &mut Vec<ProviderEvent>) {
        if let Some((index, text)) = self.text.take() {
            out.push(ProviderEvent::TextComplete { index, text });
        }
    }

    fn reasoning(&mut self, fragment: String, out: &mut Vec<ProviderEvent>) {
        if self.reasoning.is_none() {
            self.close_text(out);
            let index = self.block();
            out.push(ProviderEvent::ThinkingStart { index });
            self.reasoning = Some((index, String::new()));
        }
        if let Some((index, buf)) = &mut self.reasoning {
            buf.push_str(&fragment);
            out.push(ProviderEvent::ThinkingDelta {
                index: *index,
                text: fragment,
            });
        }
    }

    fn text(&mut self, fragment: String, out: &mut Vec<ProviderEvent>) {
        self.close_reasoning(out);
        if self.text.is_none() {
            let index = self.block();
            self.text = Some((index, String::new()));
        }
        if let Some((index, buf)) = &mut self.text {
            buf.push_str(&fragment);
            out.push(ProviderEvent::TextDelta {
                index: *index,
                text: fragment,
            });
        }
    }

    /// Applies one tool-call fragment: `id` and `name` are taken once (the first non-empty value), only
    /// `arguments` accumulates.
    fn fragment(&mut self, key: u32, fragment: Fragment, out: &mut Vec<ProviderEvent>) {
        if !self.tools.contains_key(&key) {
            self.close_reasoning(out);
            self.close_text(out);
            let block = self.block();
            self.tools.insert(
                key,
                ToolAcc {
                    block,
                    ..ToolAcc::default()
                },
            );
        }
        let Some(acc) = self.tools.get_mut(&key) else {
            return;
        };
        if acc.id.is_empty()
            && let Some(id) = fragment.id.filter(|id| !id.is_empty())
        {
            acc.id = id;
        }
        let mut new_args = None;
        if let Some(function) = fragment.function {
            if acc.name.is_empty()
                && let Some(name) = function.name.filter(|n| !n.is_empty())
            {
                acc.name = name;
            }
            match function.arguments {
                Some(Value::String(part)) if !part.is_empty() => {
                    acc.args.push_str(&part);
                    new_args = Some(part);
                }
                Some(object @ Value::Object(_)) => acc.args = object.to_string(),
                _ => {}
            }
        }
        if !acc.started {
            if !acc.name.is_empty() {
                Self::start(acc, &mut self.ids, out);
            }
        } else if let Some(json) = new_args {
            out.push(ProviderEvent::ToolCallDelta {
                index: acc.block,
                json,
            });
        }
    }

    /// Emits a tool call's start (and the arguments that came before its name), giving it a fresh id when the
    /// server sent none or one already used in this reply.
    fn start(acc: &mut ToolAcc, ids: &mut HashSet<String>, out: &mut Vec<ProviderEvent>) {
        if acc.id.is_empty() || ids.contains(&acc.id) {
            acc.id = synthesized_id();
        }
        ids.insert(acc.id.clone());
        acc.started = true;
        out.push(ProviderEvent::ToolCallStart {
            index: acc.block,
            id: acc.id.clone(),
            name: acc.name.clone(),
        });
        if !acc.args.is_empty() {
            out.push(ProviderEvent::ToolCallDelta {
                index: acc.block,
                json: acc.args.clone(),
            });
        }
    }

    fn chunk(&mut self, chunk: Chunk) -> Vec<ProviderEvent> {
        let mut out = Vec::new();
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.normalize()); // the last report wins
        }
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice.delta.unwrap_or_default();
            if let Some(reasoning) = delta
                .reasoning
                .or(delta.reasoning_content)
                .filter(|r| !r.is_empty())
            {
                self.reasoning(reasoning, &mut out);
            }
            if let Some(content) = delta.content.filter(|c| !c.is_empty()) {
                self.text(content, &mut out);
            }
            if let Some(refusal) = delta.refusal.filter(|r| !r.is_empty()) {
                self.refused = true;
                self.text(refusal, &mut out);
            }
            let base = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
            for (position, fragment) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let position = u32::try_from(position).unwrap_or(u32::MAX);
                let key = fragment.index.unwrap_or(base.saturating_add(position));
                self.fragment(key, fragment, &mut out);
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.finish = Some(reason);
            }
        }
        out
    }

    fn complete(&mut self) -> Result<Vec<ProviderEvent>, ProviderError> {
        self.done = true;
        let mut out = Vec::new();
        self.close_reasoning(&mut out);
        self.close_text(&mut out);
        let tools = std::mem::take(&mut self.tools);
        let calls = tools.len();
        for (key, mut acc) in tools {
            if !acc.started {
                if acc.name.is_empty() {
                    return Err(ProviderError::malformed(
                        format_args!("tool call {key}: it never received a function name"),
                        &acc.args,
                    ));
                }
                Self::start(&mut acc, &mut self.ids, &mut out);
            }
            let call = ToolCall {
                id: acc.id,
                name: acc.name,
                input: ToolInput::parse(&acc.args),
            };
            out.push(ProviderEvent::ToolCallComplete {
                index: acc.block,
                call,
            });
        }
        if let Some(usage) = self.usage {
            out.push(ProviderEvent::Usage(usage));
        }
        // Whether tool calls were assembled decides a tool turn: servers say `stop` for named tool choices.
        let reason = match self.finish.as_deref() {
            Some("length") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::Refusal,
            _ if self.refused => StopReason::Refusal,
            _ if calls > 0 => StopReason::ToolUse,
            _ => StopReason::EndTurn,
        };
        out.push(ProviderEvent::Stop {
            reason,
            raw: self.finish.clone(),
        });
        Ok(out)
    }
}

fn synthesized_id() -> String {
    let random = getrandom::u64().unwrap_or_default();
    let more = getrandom::u32().unwrap_or_default();
    format!("call_{random:016x}{more:08x}")
}

/// An error object as OpenAI nests it (`{"error": {...}}`) or older servers flatten it
/// (`{"object": "error", ...}`); `code` may be a string or the HTTP status as a number.
fn error_from(value: &Value, status: Option<u16>) -> Option<ProviderError> {
    let error = match value.get("error") {
        Some(Value::Null) | None if value.get("object").and_then(Value::as_str) == Some("error") => value,
        Some(Value::Null) | None => return None,
        Some(error) => error,
    };
    let field = |key: &str| match error.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let message = match error {
        Value::String(message) => message.clone(),
        _ => field("message"),
    };
    let (kind, code) = (field("type"), field("code"));
    // A numeric code is the HTTP status the server meant; inside a stream it is our best hint.
    let hinted = status.or_else(|| code.parse::<u16>().ok().filter(|c| (400..600).contains(c)));
    let message = if message.is_empty() {
        format!("{kind} {code}").trim().to_owned()
    } else {
        message
    };
    let mut err = ProviderError::classified(hinted, &[kind.as_str(), code.as_str()], message);
    err.status = status;
    Some(err)
}

impl Decoder for OpenAiDecoder {
    fn event(&mut self, event: &Event) -> Result<Vec<ProviderEvent>, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(vec![]);
        }
        if data == "[DONE]" {
            return self.complete();
        }
        let value: Value = serde_json::from_str(data)
            .map_err(|err| ProviderError::malformed(format_args!("chunk: {err}"), data))?;
        if let Some(err) = error_from(&value, None) {
            return Err(err);
        }
        let chunk: Chunk = serde_json::from_value(value)
            .map_err(|err| ProviderError::malformed(format_args!("chunk: {err}"), data))?;
        Ok(self.chunk(chunk))
    }

    fn end(&mut self) -> Result<Vec<ProviderEvent>, ProviderError> {
        if self.finish.is_some() {
            // Some servers close without `[DONE]`; after a finish_reason the reply is whole.
            self.complete()
        } else {
            Err(ProviderError::transport(
                "the stream ended before any finish_reason",
            ))
        }
    }

    fn done(&self) -> bool {
        self.done
    }

    fn error_body(status: StatusCode, body: &str) -> ProviderError {
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|value| error_from(&value, Some(status.as_u16())))
            .unwrap_or_else(|| {
                ProviderError::classified(Some(status.as_u16()), &[], plain_status_message(status, body))
            })
    }
}
