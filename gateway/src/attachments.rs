//! Files that content blocks name (`{"type": "image" | "document", "source": {"type": "file", "file_id"}}`) in the
//! events a client sends: each must be one of the tenant's files (never another tenant's, never expired), of a type
//! the model takes, before the event is stored. The harness reads the bytes when it builds the model's request.

use corral_api::events::{
    ContentBlock, DOCUMENT_MEDIA_TYPE, DocumentBlock, EventParam, IMAGE_MEDIA_TYPES, ImageBlock, Source,
};

use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The types a document file may have: a PDF, or text the harness passes on as text.
fn document_type_ok(mime: &str) -> bool {
    mime == DOCUMENT_MEDIA_TYPE || mime.starts_with("text/")
}

/// Each file source of `params` as (its field path, whether it is an image, the file id); `field` names the list
/// (`events`, or `initial_events` of a session create).
fn file_sources<'a>(params: &'a [EventParam], field: &str) -> Vec<(String, bool, &'a str)> {
    let mut out = Vec::new();
    for (i, param) in params.iter().enumerate() {
        let content: &[ContentBlock] = match param {
            EventParam::UserMessage(m) => &m.content,
            EventParam::UserCustomToolResult(r) => r.content.as_deref().unwrap_or_default(),
            _ => continue,
        };
        for (j, block) in content.iter().enumerate() {
            let (source, image) = match block {
                ContentBlock::Image(ImageBlock { source }) => (source, true),
                ContentBlock::Document(DocumentBlock { source, .. }) => (source, false),
                _ => continue,
            };
            if let Source::File { file_id } = source {
                out.push((
                    format!("{field}[{i}].content[{j}].source.file_id"),
                    image,
                    file_id.as_str(),
                ));
            }
        }
    }
    out
}

/// Refuses (400 naming the field) a file source whose file is not the tenant's or not of a type its block takes.
pub async fn check_files(
    state: &AppState,
    tenant: &Tenant,
    params: &[EventParam],
    field: &str,
) -> ApiResult<()> {
    for (path, image, id) in file_sources(params, field) {
        let meta = match crate::routes::files::find(state, tenant, id).await {
            Ok(meta) => meta,
            Err(err) if err.status == axum::http::StatusCode::NOT_FOUND => {
                return Err(ApiError::field(
                    &path,
                    format!("no file {id:?} (upload it with POST /v1/files)"),
                ));
            }
            Err(err) => return Err(err),
        };
        let fits = if image {
            IMAGE_MEDIA_TYPES.contains(&meta.mime_type.as_str())
        } else {
            document_type_ok(&meta.mime_type)
        };
        if !fits {
            let allowed = if image {
                IMAGE_MEDIA_TYPES.join(", ")
            } else {
                format!("{DOCUMENT_MEDIA_TYPE} or text/*")
            };
            return Err(ApiError::field(
                &path,
                format!(
                    "file {id:?} is {:?}; an {} takes {allowed}",
                    meta.mime_type,
                    if image { "image" } else { "document" }
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sources_are_found_in_messages_and_custom_tool_results_with_their_paths() {
        let body = serde_json::json!({"events": [
            {"type": "user.message", "content": [
                {"type": "text", "text": "see"},
                {"type": "image", "source": {"type": "file", "file_id": "file_a"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AA=="}}
            ]},
            {"type": "user.message", "content": [
                {"type": "document", "source": {"type": "file", "file_id": "file_b"}}
            ]}
        ]});
        let params = corral_api::events::parse_send_events(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            file_sources(&params, "events"),
            vec![
                ("events[0].content[1].source.file_id".to_owned(), true, "file_a"),
                ("events[1].content[0].source.file_id".to_owned(), false, "file_b"),
            ]
        );
        assert!(document_type_ok("application/pdf") && document_type_ok("text/csv"));
        assert!(!document_type_ok("image/png"));
    }
}
