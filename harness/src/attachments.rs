//! The files that a session's messages attach, handed to the model inline when its request is built:
//! - `{"source": {"type": "file", ...}}`: read from the gateway (the same internal route file resources come
//!   through, with this harness's own ServiceAccount token). A file never changes, so each is read once per replica
//!   and kept while its bytes fit [`CACHE_BYTES`].
//! - `{"source": {"type": "url", ...}}`: fetched by this harness under the session's environment's network policy:
//!   with `limited` networking only a host of its `allowedHosts`; always through the harness's outbound wall (no
//!   address inside the cluster unless the platform operator opened its host), without following redirects, within
//!   [`URL_TIMEOUT`]. Kept per session like a file; what cannot be fetched is a note to the model saying why.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use corral_api::environment::{Networking, NetworkingType};
use corral_api::events::{ContentBlock, EventBody, Source};
use corral_api::network::host_matches;
use corral_api::{Environment, Session};

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

/// How long fetching one URL source may take.
pub const URL_TIMEOUT: Duration = Duration::from_secs(30);

/// What image and document blocks of `entries` attach, in order, once each: file ids, and the URLs of `url`
/// sources (the attachment's key is the URL itself: a file id never holds `://`).
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
            let key = match source {
                Source::File { file_id } => file_id,
                Source::Url { url } => url,
                _ => continue,
            };
            if !out.contains(key) {
                out.push(key.clone());
            }
        }
    }
    out
}

/// Reads attached files from the gateway and fetches attached URLs, keeping them in memory.
pub struct AttachmentLoader {
    gateway: GatewayFiles,
    http: reqwest::Client,
    /// Reads the session's environment (its network policy) for URL sources; without it, URLs are not fetched.
    kube: Option<kube::Client>,
    /// The client URL sources are fetched with: within the harness's outbound wall, no redirects.
    web: reqwest::Client,
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
            kube: None,
            web: crate::outbound::client_builder()
                .timeout(URL_TIMEOUT)
                .build()
                .unwrap_or_default(),
            cache: Mutex::default(),
        }
    }

    /// Fetches URL sources too, reading each session's environment through `client` for its network policy.
    #[must_use]
    pub fn with_urls(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// The attachments `entries` name. An error (the gateway unreachable) is worth retrying; a file that is gone
    /// or unfit is an [`Attachment::Unavailable`], and so are the oldest once the request would carry more than
    /// [`REQUEST_ATTACHMENT_CHARS`].
    pub async fn load(
        &self,
        namespace: &str,
        session: &str,
        entries: &[LogEntry],
    ) -> Result<Attachments, String> {
        let ids = file_ids(entries);
        let mut out = Attachments::new();
        let mut carried = 0usize;
        for id in ids.into_iter().rev() {
            let is_url = id.contains("://");
            // A URL is judged by the session's own environment, so it is kept per session; a file per namespace.
            let scope = if is_url {
                format!("{namespace}/{session}")
            } else {
                namespace.to_owned()
            };
            let key = (scope, id.clone());
            let cached = self.lock().files.get(&key).cloned();
            let attachment = match cached {
                Some(hit) => hit,
                None => {
                    let fetched = if is_url {
                        let policy = match &self.kube {
                            Some(kube) => networking(kube, namespace, session).await,
                            None => Err("this harness does not fetch URLs".to_owned()),
                        };
                        Arc::new(self.fetch_url(&id, policy).await)
                    } else {
                        Arc::new(self.fetch(namespace, &id).await?)
                    };
                    // A URL that could not be had is not asked again at every model call of the session.
                    self.remember(key, fetched.clone(), is_url);
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

    fn remember(&self, key: (String, String), attachment: Arc<Attachment>, even_unavailable: bool) {
        let size = match attachment.as_ref() {
            Attachment::Inline { data, .. } => data.len(),
            Attachment::Text(text) => text.len(),
            Attachment::Unavailable(why) if even_unavailable => why.len(),
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
        let media_type = content_type(&response);
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

    /// Fetches a URL source under `policy`, the session's environment's network policy (or why it is not known);
    /// what cannot be had is a note.
    async fn fetch_url(&self, url: &str, policy: Result<Networking, String>) -> Attachment {
        let refused = |why: String| Attachment::Unavailable(format!("the URL {url} was not fetched: {why}"));
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => return refused("not an http(s) URL".into()),
        };
        let host = parsed
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        match policy {
            Ok(net)
                if net.kind == NetworkingType::Limited
                    && !net
                        .allowed_hosts
                        .iter()
                        .flatten()
                        .any(|p| host_matches(p, &host, port)) =>
            {
                return refused(format!(
                    "{host}:{port} is not in this session's environment's allowed hosts (limited networking)"
                ));
            }
            Ok(_) => {}
            Err(why) => return refused(why),
        }
        if let Err(why) = crate::outbound::current().check_url(url) {
            return refused(why);
        }
        let response = match self.web.get(parsed).send().await {
            Ok(r) => r,
            Err(e) => return refused(corral_runtime::error_chain(&e)),
        };
        let status = response.status();
        if !status.is_success() {
            return refused(format!("it answered {status}"));
        }
        let media_type = content_type(&response);
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ATTACHMENT_BYTES as u64)
        {
            return too_large(url);
        }
        let mut body = response.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = futures::StreamExt::next(&mut body).await {
            match chunk {
                Ok(chunk) if bytes.len() + chunk.len() > MAX_ATTACHMENT_BYTES => return too_large(url),
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(e) => return refused(format!("reading it failed: {e}")),
            }
        }
        attachment(url, media_type, &bytes)
    }
}

/// The network policy of the session's environment.
async fn networking(kube: &kube::Client, namespace: &str, session: &str) -> Result<Networking, String> {
    let sessions: kube::Api<Session> = kube::Api::namespaced(kube.clone(), namespace);
    let found = sessions
        .get_opt(session)
        .await
        .map_err(|e| format!("reading the session: {e}"))?
        .ok_or("the session is gone")?;
    let environments: kube::Api<Environment> = kube::Api::namespaced(kube.clone(), namespace);
    let name = &found.spec.environment_ref.name;
    let environment = environments
        .get_opt(name)
        .await
        .map_err(|e| format!("reading environment {name}: {e}"))?
        .ok_or_else(|| format!("the session's environment {name} is gone"))?;
    Ok(environment.spec.config.networking)
}

/// The response's media type, `application/octet-stream` when it names none.
fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned()
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

    /// Serves `/png` (an image), `/html` (a page), `/big` (past the limit) and 404 elsewhere on a local port.
    async fn site() -> String {
        use axum::{Router, http::header, routing::get};
        let app = Router::new()
            .route(
                "/png",
                get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![1u8, 2, 3]) }),
            )
            .route(
                "/html",
                get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<p>hi</p>") }),
            )
            .route("/big", get(|| async { vec![0u8; MAX_ATTACHMENT_BYTES + 1] }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn net(json: serde_json::Value) -> Result<Networking, String> {
        Ok(serde_json::from_value(json).unwrap())
    }

    #[tokio::test]
    async fn url_sources_are_fetched_only_where_the_environment_lets_the_session_go() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = site().await;
        let loader = AttachmentLoader::new(GatewayFiles {
            url: "http://127.0.0.1:1".into(),
            token_file: "/nonexistent".into(),
        });
        let open = || net(serde_json::json!({"type": "unrestricted"}));
        assert_eq!(
            loader.fetch_url(&format!("{base}/png"), open()).await,
            Attachment::Inline {
                media_type: "image/png".into(),
                data: "AQID".into()
            }
        );
        assert_eq!(
            loader.fetch_url(&format!("{base}/html"), open()).await,
            Attachment::Text("<p>hi</p>".into())
        );
        let limited = loader
            .fetch_url(
                &format!("{base}/png"),
                net(serde_json::json!({"type": "limited", "allowedHosts": ["example.com"]})),
            )
            .await;
        assert!(
            matches!(&limited, Attachment::Unavailable(why) if why.contains("allowed hosts")),
            "{limited:?}"
        );
        let allowed = loader
            .fetch_url(
                &format!("{base}/png"),
                net(serde_json::json!({"type": "limited", "allowedHosts": ["127.0.0.1"]})),
            )
            .await;
        assert!(matches!(allowed, Attachment::Inline { .. }), "{allowed:?}");
        for (path, says) in [("/missing", "404"), ("/big", "32 MiB")] {
            let got = loader.fetch_url(&format!("{base}{path}"), open()).await;
            assert!(
                matches!(&got, Attachment::Unavailable(why) if why.contains(says)),
                "{path}: {got:?}"
            );
        }
        let unknown = loader
            .fetch_url(&format!("{base}/png"), Err("the session is gone".into()))
            .await;
        assert!(matches!(&unknown, Attachment::Unavailable(why) if why.contains("the session is gone")));
    }

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
