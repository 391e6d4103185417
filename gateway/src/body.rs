//! Request bodies: a size limit that names itself, and JSON parsed with errors that name the offending field, never
//! a 500.

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

use crate::{error::ApiError, state::AppState};

/// The default of `--max-body-bytes`: 4 MiB, room for a few events of the largest size.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// Middleware: refuses a body whose `Content-Length` is over the gateway's limit with a 413 naming the limit,
/// before reading any of it. Bodies without a length (chunked) are cut at the same limit while read
/// (`DefaultBodyLimit`, a plain 413).
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let max = state.settings.max_body_bytes;
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(length) if length > max as u64 => too_large(length, max).into_response(),
        _ => next.run(request).await,
    }
}

/// 413 for a body of `length` bytes over `max`.
pub fn too_large(length: u64, max: usize) -> ApiError {
    let mut err = ApiError::for_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    err.message = format!("request body is {length} bytes, over the limit of {max} bytes per request");
    err.with_code("request_too_large")
}

/// 413 for a body without a `Content-Length` cut off when it passed `max` bytes.
pub fn cut_off(max: usize) -> ApiError {
    let mut err = ApiError::for_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    err.message = format!("request body is over the limit of {max} bytes per request");
    err.with_code("request_too_large")
}

/// Parses a JSON request body as `T`. An empty body is parsed as `{}`. A field of the wrong type is reported with
/// its path (`tools[0].type: unknown variant ...`); so is a field the request type does not know (request types
/// deny unknown fields, as the API does: `tools[0].colour: Extra inputs are not permitted`).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Every request body is a JSON object; serde would also read a struct from an array (`[null, null]`).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("body: must be a JSON object"));
    }
    if let Some(field) = numeric_type_tag(bytes) {
        return Err(ApiError::field(&field, "must be a string"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let mut path = err.path().to_string();
        let inner = err.into_inner();
        let mut message = strip_position(&inner.to_string());
        // A strict field's error names a path inside the field: join the two.
        if let Some((inner_path, rest)) = message.strip_prefix(INNER).and_then(|m| m.split_once(": ")) {
            path = format!("{path}.{inner_path}");
            message = rest.to_owned();
        }
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("body: invalid JSON: {inner}"))
        } else if let Some(field) = unknown_field(&path, &message) {
            ApiError::field(&field, "Extra inputs are not permitted")
        } else if path == "." {
            ApiError::invalid(format!("body: {message}"))
        } else {
            ApiError::field(&path, message)
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid(format!("body: invalid JSON: {e}")))?;
    Ok(value)
}

/// The path of the first `type` field of `bytes` whose value is a number. Every internally tagged enum of the API is
/// tagged `type`, and nested in another one (a credential's `auth.networking`), serde takes a number for a variant's
/// index: `{"type": 0, ...}` would be the first variant, its other fields unread. No `type`
/// of the API is a number. Free-form JSON (a custom tool's `input_schema`, `metadata`) is not looked into. `None`
/// when the body is not JSON: parsing it reports that.
fn numeric_type_tag(bytes: &[u8]) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::Object(map) => map.iter().find_map(|(key, child)| {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (key.as_str(), child) {
                    ("type", serde_json::Value::Number(_)) => Some(here),
                    ("input_schema" | "metadata", _) => None,
                    _ => walk(child, &here),
                }
            }),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    memchr::memmem::find(bytes, b"\"type\"")?;
    walk(&serde_json::from_slice(bytes).ok()?, "")
}

/// The full path of the field serde's "unknown field `name`, expected ..." message is about, when it is one. `path`
/// is where the error was raised: the field itself, or the object holding it; a field inside a value parsed by a
/// custom deserializer comes as "<inner path>: unknown field ...".
fn unknown_field(path: &str, message: &str) -> Option<String> {
    let (inner, rest) = match message.split_once("unknown field `")? {
        ("", rest) => (None, rest),
        (prefix, rest) => (Some(prefix.strip_suffix(": ")?), rest),
    };
    let name = rest.split_once('`')?.0;
    let mut full: Vec<&str> = [Some(path), inner]
        .into_iter()
        .flatten()
        .filter(|p| *p != "." && !p.is_empty())
        .collect();
    let last = full.last().map(|p| p.rsplit(['.', ']']).next().unwrap_or(p));
    if last != Some(name) {
        full.push(name);
    }
    Some(full.join("."))
}

/// serde_json appends ` at line 1 column 42` to data errors: useless to an API user who sent the field name.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Marks a [`strict`] field's error that names a path inside the field, for [`parse`] to join to the field's own.
const INNER: &str = "\u{1}inner:";

/// For a field whose type accepts more than the API does (a custom resource's own type, which must stay lenient
/// when it is read back from Kubernetes, or any struct, which serde also reads from an array): refuses anything but
/// a JSON object, and the first field the type would ignore, as `unknown field `<path>``, which [`parse`] reports as
/// `<field>.<path>: Extra inputs are not permitted`.
pub fn strict<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::Error;
    let value = serde_json::Value::deserialize(deserializer)?;
    if !value.is_object() {
        return Err(D::Error::custom(format!(
            "must be an object, got {}",
            kind_of(&value)
        )));
    }
    let mut ignored = None;
    let parsed = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        value,
        &mut |path: serde_ignored::Path<'_>| {
            // serde_ignored writes `?` for the `Some` of an `Option`: not a field.
            ignored.get_or_insert_with(|| {
                let path = path.to_string();
                path.split('.')
                    .filter(|s| *s != "?")
                    .collect::<Vec<_>>()
                    .join(".")
            });
        },
    ))
    .map_err(|err| {
        let mut path = err.path().to_string();
        let mut message = strip_position(&err.into_inner().to_string());
        // A strict field inside this one named a path inside itself: join it to this field's.
        if let Some((inner_path, rest)) = message.strip_prefix(INNER).and_then(|m| m.split_once(": ")) {
            path = match path.as_str() {
                "." | "" => inner_path.to_owned(),
                outer => format!("{outer}.{inner_path}"),
            };
            message = rest.to_owned();
        }
        match path.as_str() {
            "." | "" => D::Error::custom(message),
            path => D::Error::custom(format!("{INNER}{path}: {message}")),
        }
    })?;
    match ignored {
        Some(path) => Err(D::Error::custom(format!("unknown field `{path}`"))),
        None => Ok(parsed),
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// [`strict`] for an optional field; `null` means absent (the SDK types such fields `Optional[...]`).
pub fn strict_option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(value) => strict(value).map(Some).map_err(serde::de::Error::custom),
    }
}

/// [`strict`] for an update's nullable field (see [`nullable`]).
pub fn strict_nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None => Ok(Some(None)),
        Some(value) => strict(value)
            .map(|v| Some(Some(v)))
            .map_err(serde::de::Error::custom),
    }
}

/// For update bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        First,
        Second { input_schema: serde_json::Value },
        Wrap { inner: Box<Tagged> },
    }

    #[derive(Deserialize, Debug)]
    struct Holder {
        item: Tagged,
        #[serde(default)]
        items: Vec<Tagged>,
    }

    #[test]
    fn a_numeric_type_tag_is_refused_where_serde_would_read_it_as_a_variant_index() {
        // Why: inside another tagged enum (a credential's `auth.networking`), serde takes 0 for the first variant and
        // never looks at the rest.
        let wrapped = r#"{"type":"wrap","inner":{"type":0,"hosts":["x"]}}"#;
        let read: Tagged = serde_json::from_str(wrapped).unwrap();
        assert_eq!(
            read,
            Tagged::Wrap {
                inner: Box::new(Tagged::First)
            }
        );
        let err = parse::<Holder>(format!(r#"{{"item":{wrapped}}}"#).as_bytes()).unwrap_err();
        assert_eq!(err.message, "item.inner.type: must be a string");
        let err = parse::<Holder>(br#"{"item":{"type":"first"},"items":[{"type":"first"},{"type":1.5}]}"#)
            .unwrap_err();
        assert_eq!(err.message, "items[1].type: must be a string");
        // Free-form JSON may have a property named `type`, and a JSON Schema's `type` of a number is its own affair.
        let ok = parse::<Holder>(
            br#"{"item":{"type":"second","input_schema":{"type":"object","properties":{"type":{"type":"integer"}},"x":{"type":1}}}}"#,
        )
        .unwrap();
        assert!(matches!(ok.item, Tagged::Second { .. }) && ok.items.is_empty());
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default)]
        tags: Vec<u32>,
        #[serde(default, deserialize_with = "nullable")]
        title: Option<Option<String>>,
        #[serde(default)]
        metadata: BTreeMap<String, String>,
    }

    #[test]
    fn errors_name_the_field_and_bad_json_is_a_400() {
        let err = parse::<Body>(br#"{"name":"a","tags":[1,"x"]}"#).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message.starts_with("tags[1]: invalid type"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("line 1"), "{}", err.message);
        let err = parse::<Body>(br#"{"name":"#).unwrap_err();
        assert!(err.message.starts_with("body: invalid JSON"), "{}", err.message);
        let err = parse::<Body>(b"{}").unwrap_err();
        assert!(err.message.contains("missing field `name`"), "{}", err.message);
        let err = parse::<Body>(b"[1]").unwrap_err();
        assert_eq!(err.status, 400);
        let err = parse::<Body>(br#"{"name":"a"} trailing"#).unwrap_err();
        assert!(err.message.contains("invalid JSON"), "{}", err.message);
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        name: String,
        #[serde(default)]
        inner: Vec<Inner>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        x: u32,
    }

    #[test]
    fn unknown_fields_of_strict_types_are_a_400_naming_the_field() {
        let err = parse::<Strict>(br#"{"name":"a","surprise":{"x":1}}"#).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.message, "surprise: Extra inputs are not permitted");
        let err = parse::<Strict>(br#"{"name":"a","inner":[{"x":1},{"x":2,"y":3}]}"#).unwrap_err();
        assert_eq!(err.message, "inner[1].y: Extra inputs are not permitted");
        assert_eq!(
            unknown_field("model", "temperature: unknown field `temperature`, expected `id`").as_deref(),
            Some("model.temperature")
        );
        assert_eq!(
            unknown_field("agent", "unknown field `x`, expected `id`").as_deref(),
            Some("agent.x")
        );
        assert_eq!(unknown_field(".", "unknown field `x`").as_deref(), Some("x"));
        assert_eq!(unknown_field("a", "invalid type: string").as_deref(), None);
    }

    #[test]
    fn null_differs_from_absent() {
        let b: Body = parse(br#"{"name":"a"}"#).unwrap();
        assert_eq!(b.title, None);
        let b: Body = parse(br#"{"name":"a","title":null}"#).unwrap();
        assert_eq!(b.title, Some(None));
        let b: Body = parse(br#"{"name":"a","title":"t"}"#).unwrap();
        assert_eq!(b.title, Some(Some("t".into())));
    }

    #[test]
    fn a_body_over_the_limit_names_the_limit() {
        let err = too_large(5 << 20, 4 << 20);
        assert_eq!(err.status, 413);
        assert_eq!(
            err.message,
            "request body is 5242880 bytes, over the limit of 4194304 bytes per request"
        );
    }

    #[test]
    fn an_empty_body_is_an_empty_object() {
        #[derive(Deserialize)]
        struct Nothing {}
        assert!(parse::<Nothing>(b"").is_ok());
        assert!(parse::<Nothing>(b"  \n").is_ok());
    }
}
