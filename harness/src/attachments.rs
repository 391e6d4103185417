//! The files that a session's messages attach (`{"type": "image" | "document", "source": {"type": "file", ...}}`),
//! read from the gateway when the model's request is built (the same internal route file resources come through,
//! with this harness's own ServiceAccount token) and handed to the model inline. A file never changes, so each is
//! read once per replica and kept while its bytes fit [`CACHE_BYTES`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use corral_api::events::{ContentBlock, EventBody, Source};

use crate::log::LogEntry;
use crate::tools::file_resources::GatewayFiles;

/// The largest document handed to a model.
pub const MAX_ATTACHMENT_BYTES: usize = 32 << 20;
/// The largest image handed to a model (Anthropic's limit).
pub const MAX_IMAGE_BYTES: usize = 5 << 20;
/// Base64 characters of attachments one request carries at most (a provider refuses a request past about
/// 32 MB); the newest attachments are kept, older ones become notes.
pub const REQUEST_ATTACHMENT_CHARS: usize = 24 << 20;
/// Bytes of attachments kept in memory per replica.
const CACHE_BYTES: usize = 128 << 20;

/// A file as the model receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// Its bytes, base64-encoded, with their media type.
    Inline {
        /// The file's media type.
        media_type: String,
        /// The base64-encoded bytes.
        data: String,
    },
    /// Text (a `text/*` document file).
    Text(String),
    /// Why the model cannot have it (deleted, too large, not UTF-8): said to the model in its place.
    Unavailable(String),
}

/// Attachments by file id, as [`crate::engine::context::build_with`] takes them.
pub type Attachments = HashMap<String, Arc<Attachment>>;

/// The file ids that image and document blocks of `entries` name, in order, once each.
pub fn file_ids(entries: &[LogEntry]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in entries {
        let content: &[ContentBlock] = match &entry.body {
            EventBody::UserMessage(m) => &m.content,
            EventBody::UserCustomToolResult(r) => r.content.as_deref().unwrap_or_default(),
            _ => continue,
        };
        for block in content {
            let source = match block {
                ContentBlock::Image(image) => &image.source,
                ContentBlock::Document(doc) => &doc.source,
                _ => continue,
            };
            if let Source::File { file_id } = source
                && !out.contains(file_id)
            {
                out.push(file_id.clone());
            }
        }
    }
    out
}

/// Reads attached files from the gateway, keeping them in memory.
pub struct AttachmentLoader {
    gateway: GatewayFiles,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    files: BTreeMap<(String, String), Arc<Attachment>>,
    bytes: usize,
}

impl std::fmt::Debug for AttachmentLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentLoader")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl AttachmentLoader {
    /// A loader reading through `gateway`.
    pub fn new(gateway: GatewayFiles) -> Self {
        Self {
            gateway,
            http: GatewayFiles::client(Some(Duration::from_secs(120))),
            cache: Mutex::default(),
        }
    }

    /// The attachments `entries` name. An error (the gateway unreachable) is worth retrying; a file that is gone
    /// or unfit is an [`Attachment::Unavailable`], and so are the oldest once the request would carry more than
    /// [`REQUEST_ATTACHMENT_CHARS`].
    pub async fn load(&self, namespace: &str, entries: &[LogEntry]) -> Result<Attachments, String> {
        let ids = file_ids(entries);
        let mut out = Attachments::new();
        let mut carried = 0usize;
        for id in ids.into_iter().rev() {
            let key = (namespace.to_owned(), id.clone());
            let cached = self.lock().files.get(&key).cloned();
            let attachment = match cached {
                Some(hit) => hit,
                None => {
                    let fetched = Arc::new(self.fetch(namespace, &id).await?);
                    self.remember(key, fetched.clone());
                    fetched
                }
            };
            let size = match attachment.as_ref() {
                Attachment::Inline { data, .. } => data.len(),
                Attachment::Text(text) => text.len(),
                Attachment::Unavailable(_) => 0,
            };
            let attachment = if carried + size > REQUEST_ATTACHMENT_CHARS {
                Arc::new(Attachment::Unavailable(format!(
                    "the file {id} was left out: with the newer attachments the request would carry more than {} MiB",
                    REQUEST_ATTACHMENT_CHARS >> 20
                )))
            } else {
                carried += size;
                attachment
            };
            out.insert(id, attachment);
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, key: (String, String), attachment: Arc<Attachment>) {
        let size = match attachment.as_ref() {
            Attachment::Inline { data, .. } => data.len(),
            Attachment::Text(text) => text.len(),
            // A missing file may be uploaded under no other id, but reading it again costs little.
            Attachment::Unavailable(_) => return,
        };
        let mut cache = self.lock();
        if cache.bytes + size > CACHE_BYTES {
            cache.files.clear();
            cache.bytes = 0;
        }
        cache.bytes += size;
        cache.files.insert(key, attachment);
    }

    async fn fetch(&self, namespace: &str, id: &str) -> Result<Attachment, String> {
        let response = self
            .gateway
            .get(&self.http, namespace, &["files", id, "content"])
            .await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Attachment::Unavailable(format!(
                "the file {id} was deleted before the model read it"
            )));
        }
        if status.is_client_error() {
            // Retrying cannot help (a harness without the right to read files): the model is told instead.
            return Ok(Attachment::Unavailable(format!(
                "the file {id} could not be read (the gateway answered {status})"
            )));
        }
        if !status.is_success() {
            return Err(format!(
                "the gateway answered {status} for the attached file {id}"
            ));
        }
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ATTACHMENT_BYTES as u64)
        {
            return Ok(too_large(id));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the attached file {id}: {e}"))?;
        if bytes.len() > MAX_ATTACHMENT_BYTES {
            return Ok(too_large(id));
        }
        Ok(attachment(id, media_type, &bytes))
    }
}

fn too_large(id: &str) -> Attachment {
    Attachment::Unavailable(format!(
        "the file {id} is larger than the {} MiB a model is handed",
        MAX_ATTACHMENT_BYTES >> 20
    ))
}

/// A file's bytes as the model receives them: text for `text/*`, inline data otherwise.
fn attachment(id: &str, media_type: String, bytes: &[u8]) -> Attachment {
    let essence = media_type.split(';').next().unwrap_or_default().trim().to_owned();
    if essence.starts_with("text/") {
        return match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Attachment::Text(text),
            Err(_) => Attachment::Unavailable(format!("the text file {id} is not UTF-8")),
        };
    }
    if essence.starts_with("image/") && bytes.len() > MAX_IMAGE_BYTES {
        return Attachment::Unavailable(format!(
            "the image {id} is larger than the {} MiB a model takes",
            MAX_IMAGE_BYTES >> 20
        ));
    }
    Attachment::Inline {
        media_type: essence,
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_files_become_text_and_others_inline_data() {
        assert_eq!(
            attachment("file_1", "text/csv; charset=utf-8".into(), b"a,b"),
            Attachment::Text("a,b".into())
        );
        assert_eq!(
            attachment("file_2", "image/png".into(), &[1, 2, 3]),
            Attachment::Inline {
                media_type: "image/png".into(),
                data: "AQID".into()
            }
        );
        assert!(matches!(
            attachment("file_3", "text/plain".into(), &[0xff, 0xfe]),
            Attachment::Unavailable(_)
        ));
        assert!(matches!(
            attachment("file_4", "image/png".into(), &vec![0; MAX_IMAGE_BYTES + 1]),
            Attachment::Unavailable(why) if why.contains("5 MiB")
        ));
    }
}
