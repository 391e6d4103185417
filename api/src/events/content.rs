//! Content blocks carried by messages, tool results and system messages (the same shape in requests and events).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One block of content.
///
/// Block types this crate does not know are kept as raw JSON in [`ContentBlock::Other`], so a newer or foreign log
/// still reads; fields a known block does not define are ignored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// `{type:"text", text}`.
    Text(TextBlock),
    /// `{type:"image", source}`.
    Image(ImageBlock),
    /// `{type:"document", source, title?, context?}`.
    Document(DocumentBlock),
    /// `{type:"redacted"}`: content withheld.
    Redacted,
    /// `{type:"search_result", source, title, content, citations}`.
    SearchResult(SearchResultBlock),
    /// A block of a type this crate does not know, kept as it came (including its `type`).
    #[serde(untagged)]
    Other(Value),
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(TextBlock { text: text.into() })
    }

    /// The block's `type` string.
    pub fn type_name(&self) -> &str {
        match self {
            Self::Text(_) => "text",
            Self::Image(_) => "image",
            Self::Document(_) => "document",
            Self::Redacted => "redacted",
            Self::SearchResult(_) => "search_result",
            Self::Other(raw) => raw.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The text of a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(block) => Some(&block.text),
            _ => None,
        }
    }
}

/// `{type:"text", text}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TextBlock {
    /// The text.
    pub text: String,
}

/// `{type:"image", source}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageBlock {
    /// Where the image comes from: `base64`, `url` or `file`.
    pub source: Source,
}

/// `{type:"document", source, title?, context?}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DocumentBlock {
    /// Where the document comes from: `base64`, `url`, `file` or `text`.
    pub source: Source,
    /// An optional title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Optional context about the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// `{type:"search_result", source, title, content, citations}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SearchResultBlock {
    /// The URL of the result.
    pub source: String,
    /// The result's title.
    pub title: String,
    /// The result's text.
    pub content: Vec<TextContent>,
    /// Whether citations are enabled for this result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Citations>,
}

/// `{type:"text", text}` where only text is allowed (search result content, system messages).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename = "text")]
pub struct TextContent {
    /// The text.
    pub text: String,
}

/// `{enabled: bool}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Citations {
    /// Whether citations are enabled.
    pub enabled: bool,
}

/// The source of an image or document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Inline data: `{type:"base64", media_type, data}`.
    Base64 {
        /// The MIME type, for example `image/png`.
        media_type: String,
        /// The base64-encoded bytes.
        data: String,
    },
    /// `{type:"url", url}`.
    Url {
        /// Where to fetch it.
        url: String,
    },
    /// `{type:"file", file_id}`: a file uploaded through the Files API.
    File {
        /// The file's id.
        file_id: String,
    },
    /// Inline plain text (documents only): `{type:"text", media_type:"text/plain", data}`.
    Text {
        /// The MIME type, `text/plain`.
        media_type: String,
        /// The text.
        data: String,
    },
    /// A source type this crate does not know, kept as it came.
    #[serde(untagged)]
    Other(Value),
}

impl Source {
    /// The source's `type` string.
    pub fn type_name(&self) -> &str {
        match self {
            Self::Base64 { .. } => "base64",
            Self::Url { .. } => "url",
            Self::File { .. } => "file",
            Self::Text { .. } => "text",
            Self::Other(raw) => raw.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}
