//! What a client may send (`POST /v1/sessions/{id}/events`), with checks that name the offending field.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{
    body::{
        EventBody, SystemMessage, UserCustomToolResult, UserInterrupt, UserMessage, UserToolConfirmation,
        UserToolResult,
    },
    content::{ContentBlock, DocumentBlock, ImageBlock, SearchResultBlock, Source, TextBlock},
    kind::{EventType, Sender},
    parts::ConfirmationResult,
};

/// The most events one request may carry.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// One event a client may send. Its JSON is the API's request shape (`{"type":"user.message","content":[...]}`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type")]
pub enum EventParam {
    /// `user.message`.
    #[serde(rename = "user.message")]
    UserMessage(UserMessage),
    /// `user.interrupt`.
    #[serde(rename = "user.interrupt")]
    UserInterrupt(UserInterrupt),
    /// `user.tool_confirmation`.
    #[serde(rename = "user.tool_confirmation")]
    UserToolConfirmation(UserToolConfirmation),
    /// `user.custom_tool_result`.
    #[serde(rename = "user.custom_tool_result")]
    UserCustomToolResult(UserCustomToolResult),
    /// `user.tool_result`.
    #[serde(rename = "user.tool_result")]
    UserToolResult(UserToolResult),
    /// `system.message`.
    #[serde(rename = "system.message")]
    SystemMessage(SystemMessage),
}

impl EventParam {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::UserMessage(_) => EventType::UserMessage,
            Self::UserInterrupt(_) => EventType::UserInterrupt,
            Self::UserToolConfirmation(_) => EventType::UserToolConfirmation,
            Self::UserCustomToolResult(_) => EventType::UserCustomToolResult,
            Self::UserToolResult(_) => EventType::UserToolResult,
            Self::SystemMessage(_) => EventType::SystemMessage,
        }
    }

    /// The event's `type` string.
    pub fn type_name(&self) -> &'static str {
        self.event_type().name()
    }

    /// Whether appending this event wakes the harness pool.
    pub fn wakes_harness(&self) -> bool {
        self.event_type().props().wakes_harness
    }

    /// The event body to store.
    pub fn into_body(self) -> EventBody {
        match self {
            Self::UserMessage(e) => EventBody::UserMessage(e),
            Self::UserInterrupt(e) => EventBody::UserInterrupt(e),
            Self::UserToolConfirmation(e) => EventBody::UserToolConfirmation(e),
            Self::UserCustomToolResult(e) => EventBody::UserCustomToolResult(e),
            Self::UserToolResult(e) => EventBody::UserToolResult(e),
            Self::SystemMessage(e) => EventBody::SystemMessage(e),
        }
    }
}

impl From<EventParam> for EventBody {
    fn from(param: EventParam) -> Self {
        param.into_body()
    }
}

/// A request body that is not a valid list of client events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventParamError {
    /// The offending field's path, for example `events[0].content[1].text`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl EventParamError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses and checks the body of `POST /v1/sessions/{id}/events`: `{"events": [EventParam, ...]}`.
pub fn parse_send_events(body: &[u8]) -> Result<Vec<EventParam>, EventParamError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| EventParamError::new("body", format!("invalid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(EventParamError::new(
            "body",
            "must be a JSON object with an `events` array",
        ));
    };
    let Some(events) = object.get("events") else {
        return Err(EventParamError::new("events", "is required"));
    };
    let Some(events) = events.as_array() else {
        return Err(EventParamError::new("events", "must be an array"));
    };
    let params = events
        .iter()
        .enumerate()
        .map(|(i, event)| parse_param(event, &format!("events[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    validate_params(&params, "events")?;
    Ok(params)
}

/// Parses one client event at `path`.
fn parse_param(value: &Value, path: &str) -> Result<EventParam, EventParamError> {
    if !value.is_object() {
        return Err(EventParamError::new(path, "must be an object"));
    }
    let Some(kind) = value.get("type") else {
        return Err(EventParamError::new(format!("{path}.type"), "is required"));
    };
    let Some(kind) = kind.as_str() else {
        return Err(EventParamError::new(format!("{path}.type"), "must be a string"));
    };
    Ok(match EventType::from_name(kind) {
        Some(EventType::UserMessage) => EventParam::UserMessage(typed(value, path)?),
        Some(EventType::UserInterrupt) => EventParam::UserInterrupt(typed(value, path)?),
        Some(EventType::UserToolConfirmation) => EventParam::UserToolConfirmation(typed(value, path)?),
        Some(EventType::UserCustomToolResult) => EventParam::UserCustomToolResult(typed(value, path)?),
        Some(EventType::UserToolResult) => EventParam::UserToolResult(typed(value, path)?),
        Some(EventType::SystemMessage) => EventParam::SystemMessage(typed(value, path)?),
        Some(
            EventType::AgentMessage
            | EventType::AgentThinking
            | EventType::AgentToolUse
            | EventType::AgentToolResult
            | EventType::AgentMcpToolUse
            | EventType::AgentMcpToolResult
            | EventType::AgentCustomToolUse
            | EventType::AgentThreadContextCompacted
            | EventType::SessionStatusRunning
            | EventType::SessionStatusIdle
            | EventType::SessionStatusRescheduled
            | EventType::SessionStatusTerminated
            | EventType::SessionError
            | EventType::SessionUpdated
            | EventType::SessionUsage
            | EventType::SessionDeleted
            | EventType::SpanModelRequestStart
            | EventType::SpanModelRequestEnd,
        )
        | None => {
            let allowed: Vec<&str> = EventType::ALL
                .into_iter()
                .filter(|t| t.props().sender == Sender::Client)
                .map(EventType::name)
                .collect();
            return Err(EventParamError::new(
                format!("{path}.type"),
                format!(
                    "unsupported event type {kind:?}; a client may send {}",
                    allowed.join(", ")
                ),
            ));
        }
    })
}

/// Deserializes `value` as `T`, reporting the deepest field serde can name under `path`, and refuses a field `T` does
/// not know (the API's `Extra inputs are not permitted`): nothing a client sends is accepted and then dropped.
fn typed<T: DeserializeOwned + Serialize>(value: &Value, path: &str) -> Result<T, EventParamError> {
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = if inner == "." {
            path.to_owned()
        } else {
            format!("{path}.{inner}")
        };
        EventParamError::new(field, e.into_inner().to_string())
    })?;
    // What was kept is what the parsed event writes back; the `type` tag is read by `parse_param`, not by `T`.
    let mut kept = serde_json::to_value(&parsed).unwrap_or(Value::Null);
    if let (Value::Object(kept), Some(kind)) = (&mut kept, value.get("type")) {
        kept.insert("type".to_owned(), kind.clone());
    }
    match dropped_field(value, &kept, path) {
        Some(field) => Err(EventParamError::new(field, "Extra inputs are not permitted")),
        None => Ok(parsed),
    }
}

/// The path of the first field of `sent` that `kept` (the same value parsed and written back) lost. A `null` field
/// counts as absent.
fn dropped_field(sent: &Value, kept: &Value, path: &str) -> Option<String> {
    match (sent, kept) {
        (Value::Object(sent), Value::Object(kept)) => {
            sent.iter().find_map(|(key, value)| match kept.get(key) {
                Some(kept) => dropped_field(value, kept, &format!("{path}.{key}")),
                None if value.is_null() => None,
                None => Some(format!("{path}.{key}")),
            })
        }
        (Value::Array(sent), Value::Array(kept)) if sent.len() == kept.len() => sent
            .iter()
            .zip(kept)
            .enumerate()
            .find_map(|(i, (sent, kept))| dropped_field(sent, kept, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Checks what a schema cannot: non-empty content of the kinds each event allows, `deny_message` only with `deny`,
/// and at most one `system.message`, last and right after the event it accompanies. `path` names the list in
/// errors (`events`, `initial_events`).
pub fn validate_params(params: &[EventParam], path: &str) -> Result<(), EventParamError> {
    if params.is_empty() {
        return Err(EventParamError::new(path, "must hold at least one event"));
    }
    if params.len() > MAX_EVENTS_PER_REQUEST {
        return Err(EventParamError::new(
            path,
            format!(
                "holds {} events; at most {MAX_EVENTS_PER_REQUEST} are allowed",
                params.len()
            ),
        ));
    }
    for (i, param) in params.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match param {
            EventParam::UserMessage(e) => {
                check_content(&e.content, &format!("{at}.content"), MESSAGE_BLOCKS)?
            }
            EventParam::UserInterrupt(e) => {
                check_optional_id(e.session_thread_id.as_deref(), &at, "session_thread_id")?
            }
            EventParam::UserToolConfirmation(e) => {
                check_id(&e.tool_use_id, &at, "tool_use_id")?;
                if e.deny_message.is_some() && e.result != ConfirmationResult::Deny {
                    return Err(EventParamError::new(
                        format!("{at}.deny_message"),
                        "is allowed only with result \"deny\"",
                    ));
                }
            }
            EventParam::UserCustomToolResult(e) => {
                check_id(&e.custom_tool_use_id, &at, "custom_tool_use_id")?;
                if let Some(content) = &e.content {
                    check_blocks(content, &format!("{at}.content"), RESULT_BLOCKS)?;
                }
            }
            EventParam::UserToolResult(_) => {
                // The answer of a self-hosted sandbox; Corral runs every tool itself, so nothing would read it.
                return Err(EventParamError::new(
                    format!("{at}.type"),
                    "user.tool_result answers a tool run by a self-hosted environment, which Corral does not \
                     support; answer custom tools with user.custom_tool_result",
                ));
            }
            EventParam::SystemMessage(e) => {
                check_content(&e.content, &format!("{at}.content"), &["text"])?;
                if i + 1 != params.len() {
                    return Err(EventParamError::new(
                        format!("{at}.type"),
                        "a system.message must be the last event of the request (at most one per request)",
                    ));
                }
                let follows = i
                    .checked_sub(1)
                    .and_then(|prev| params.get(prev))
                    .is_some_and(|prev| {
                        matches!(
                            prev,
                            EventParam::UserMessage(_)
                                | EventParam::UserToolResult(_)
                                | EventParam::UserCustomToolResult(_)
                        )
                    });
                if !follows {
                    return Err(EventParamError::new(
                        format!("{at}.type"),
                        "a system.message must directly follow the user.message, user.tool_result or \
                         user.custom_tool_result it accompanies",
                    ));
                }
            }
        }
    }
    Ok(())
}

const MESSAGE_BLOCKS: &[&str] = &["text", "image", "document", "redacted"];
const RESULT_BLOCKS: &[&str] = &["text", "image", "document", "search_result"];
/// Image sources the model receives: inline data, files of the Files API (read by the harness), and URLs (fetched by
/// the harness under the session's environment's network policy).
const IMAGE_SOURCES: &[&str] = &["base64", "file", "url"];
/// Document sources the model receives: plain text, inline PDFs, files of the Files API, and URLs (fetched by the
/// harness under the session's environment's network policy).
const DOCUMENT_SOURCES: &[&str] = &["text", "base64", "file", "url"];
/// The longest URL a source may name.
pub const MAX_SOURCE_URL_CHARS: usize = 2048;
/// The image types the model providers take.
pub const IMAGE_MEDIA_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
/// The type of an inline document: a PDF (plain text comes as a `text` source).
pub const DOCUMENT_MEDIA_TYPE: &str = "application/pdf";

fn check_id(id: &str, at: &str, field: &str) -> Result<(), EventParamError> {
    if id.trim().is_empty() {
        return Err(EventParamError::new(format!("{at}.{field}"), "must not be empty"));
    }
    Ok(())
}

fn check_optional_id(id: Option<&str>, at: &str, field: &str) -> Result<(), EventParamError> {
    id.map_or(Ok(()), |id| check_id(id, at, field))
}

fn check_content(content: &[ContentBlock], path: &str, allowed: &[&str]) -> Result<(), EventParamError> {
    if content.is_empty() {
        return Err(EventParamError::new(path, "must hold at least one content block"));
    }
    check_blocks(content, path, allowed)
}

fn check_blocks(content: &[ContentBlock], path: &str, allowed: &[&str]) -> Result<(), EventParamError> {
    for (j, block) in content.iter().enumerate() {
        let at = format!("{path}[{j}]");
        let kind = block.type_name();
        if let ContentBlock::Other(raw) = block {
            return Err(explain_other_block(raw, &at, allowed));
        }
        if !allowed.contains(&kind) {
            return Err(EventParamError::new(
                format!("{at}.type"),
                format!(
                    "{kind:?} blocks are not allowed here; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
        match block {
            ContentBlock::Text(TextBlock { text }) if text.is_empty() => {
                return Err(EventParamError::new(format!("{at}.text"), "must not be empty"));
            }
            // Only the sources the harness hands to the model.
            ContentBlock::Image(ImageBlock { source }) => {
                check_source(source, &format!("{at}.source"), IMAGE_SOURCES)?;
                check_media_type(source, &format!("{at}.source"), IMAGE_MEDIA_TYPES)?;
            }
            ContentBlock::Document(DocumentBlock { source, .. }) => {
                check_source(source, &format!("{at}.source"), DOCUMENT_SOURCES)?;
                check_media_type(source, &format!("{at}.source"), &[DOCUMENT_MEDIA_TYPE])?;
            }
            ContentBlock::SearchResult(SearchResultBlock { source, .. }) if source.is_empty() => {
                return Err(EventParamError::new(format!("{at}.source"), "must not be empty"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Explains why a block did not parse as any known block type: an unknown `type`, or a known one with bad fields.
fn explain_other_block(raw: &Value, at: &str, allowed: &[&str]) -> EventParamError {
    let kind = raw.get("type").and_then(Value::as_str);
    let strict = match kind {
        Some("text") => typed::<TextBlock>(raw, at).err(),
        Some("image") => typed::<ImageBlock>(raw, at).err(),
        Some("document") => typed::<DocumentBlock>(raw, at).err(),
        Some("search_result") => typed::<SearchResultBlock>(raw, at).err(),
        _ => None,
    };
    match (strict, kind) {
        (Some(err), _) => err,
        (None, Some(kind)) => EventParamError::new(
            format!("{at}.type"),
            format!(
                "unsupported content block type {kind:?}; allowed: {}",
                allowed.join(", ")
            ),
        ),
        (None, None) => EventParamError::new(format!("{at}.type"), "is required (a string)"),
    }
}

/// A source URL the harness may fetch: `http` or `https`, a host, no credentials, no whitespace or control
/// characters, at most [`MAX_SOURCE_URL_CHARS`]. Where it may go is the session's environment's to say, when it is
/// fetched.
fn url_ok(url: &str) -> Result<(), String> {
    if url.chars().count() > MAX_SOURCE_URL_CHARS {
        return Err(format!("longer than {MAX_SOURCE_URL_CHARS} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds whitespace or control characters".into());
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(format!("must be an http:// or https:// URL, got {url:?}"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err("names no host".into());
    }
    if authority.contains('@') {
        return Err("must not carry credentials (user:password@)".into());
    }
    Ok(())
}

/// An inline (`base64`) source's media type must be one the model takes.
fn check_media_type(source: &Source, path: &str, allowed: &[&str]) -> Result<(), EventParamError> {
    match source {
        Source::Base64 { media_type, .. }
            if !media_type.is_empty() && !allowed.contains(&media_type.as_str()) =>
        {
            Err(EventParamError::new(
                format!("{path}.media_type"),
                format!("{media_type:?} is not accepted; allowed: {}", allowed.join(", ")),
            ))
        }
        _ => Ok(()),
    }
}

fn check_source(source: &Source, path: &str, allowed: &[&str]) -> Result<(), EventParamError> {
    let kind = source.type_name();
    if !allowed.contains(&kind) {
        return Err(EventParamError::new(
            format!("{path}.type"),
            format!(
                "source type {kind:?} is not supported by Corral yet; allowed: {}",
                allowed.join(", ")
            ),
        ));
    }
    let empty = match source {
        Source::Base64 { media_type, data } | Source::Text { media_type, data } => {
            if media_type.is_empty() {
                Some("media_type")
            } else if data.is_empty() {
                Some("data")
            } else {
                None
            }
        }
        Source::Url { url } if url.is_empty() => Some("url"),
        Source::Url { url } => {
            return url_ok(url).map_err(|why| EventParamError::new(format!("{path}.url"), why));
        }
        Source::File { file_id } if file_id.is_empty() => Some("file_id"),
        _ => None,
    };
    match empty {
        Some(field) => Err(EventParamError::new(
            format!("{path}.{field}"),
            "must not be empty",
        )),
        None => Ok(()),
    }
}
