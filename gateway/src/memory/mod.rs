//! Memory stores: named collections of text documents (memories, addressed by path) whose every change is kept as a
//! version. Everything lives in the session log's Redis under the tenant's prefix, one hash-tag slot per store
//! ([`corral_session::keys::MemoryStoreKeys`]), so a write with its precondition and its version is one script.
//! See docs/memory.md.

pub mod paths;
pub mod scripts;
pub mod store;

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::mapping::common::time;

/// The largest memory, in UTF-8 bytes.
pub const MAX_CONTENT_BYTES: usize = 102_400;
/// The most memory stores one namespace may hold.
pub const MAX_STORES: u64 = 1_000;
/// The most memories one store may hold.
pub const MAX_MEMORIES: u64 = 10_000;
/// The most content bytes one store's versions may hold together (redacting versions or deleting the store frees
/// them).
pub const MAX_STORE_BYTES: u64 = 256 << 20;
/// The longest store name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// The longest store description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// Whether `id` is `<prefix>` followed by a ULID: anything else is not looked up.
pub fn valid_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|u| u.len() == 26 && ulid::Ulid::from_string(u).is_ok())
}

/// A new id: `<prefix>` and a ULID.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new())
}

/// Store ids start with this.
pub const STORE_PREFIX: &str = "memstore_";
/// Memory ids start with this.
pub const MEMORY_PREFIX: &str = "mem_";
/// Version ids start with this.
pub const VERSION_PREFIX: &str = "memver_";

/// Whether `sha` is a SHA-256 as the API writes it: 64 lowercase hexadecimal characters.
pub fn valid_sha256(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The lowercase hex SHA-256 of `content`'s UTF-8 bytes.
pub fn sha256(content: &str) -> String {
    crate::keys::hash_key(content)
}

/// A time stored as microseconds since the epoch, formatted as the API does.
fn stored_time(value: Option<&String>) -> Value {
    value
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map_or(Value::Null, |t| json!(time(t)))
}

/// A JSON field stored as text (`metadata`, actors), or `null`.
fn stored_json(value: Option<&String>) -> Value {
    value
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

/// Whether a response carries content: `view=full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Without `content`.
    Basic,
    /// With `content`.
    Full,
}

/// The SDK's `BetaManagedAgentsMemoryStore` from the store's hash.
pub fn store_object(id: &str, f: &HashMap<String, String>) -> Value {
    json!({
        "id": id,
        "type": "memory_store",
        "name": f.get("name").cloned().unwrap_or_default(),
        "description": f.get("description").cloned().unwrap_or_default(),
        "metadata": match stored_json(f.get("metadata")) { Value::Null => json!({}), m => m },
        "created_at": stored_time(f.get("created_at")),
        "updated_at": stored_time(f.get("updated_at")),
        "archived_at": stored_time(f.get("archived_at")),
    })
}

/// The SDK's `BetaManagedAgentsMemory` from the memory's hash (and its content for `view=full`).
pub fn memory_object(store: &str, id: &str, f: &HashMap<String, String>, content: Option<&str>) -> Value {
    json!({
        "id": id,
        "type": "memory",
        "memory_store_id": store,
        "path": f.get("path"),
        "content": content,
        "content_sha256": f.get("sha"),
        "content_size_bytes": f.get("size").and_then(|s| s.parse::<u64>().ok()),
        "memory_version_id": f.get("version"),
        "created_at": stored_time(f.get("created_at")),
        "updated_at": stored_time(f.get("updated_at")),
    })
}

/// The SDK's `BetaManagedAgentsMemoryVersion` from the version's hash. A redacted version has no path, content,
/// size or hash; a `deleted` one no content, size or hash.
pub fn version_object(store: &str, id: &str, f: &HashMap<String, String>, view: View) -> Value {
    json!({
        "id": id,
        "type": "memory_version",
        "memory_store_id": store,
        "memory_id": f.get("memory_id"),
        "operation": f.get("operation"),
        "path": f.get("path"),
        "content": if view == View::Full { f.get("content") } else { None },
        "content_sha256": f.get("sha"),
        "content_size_bytes": f.get("size").and_then(|s| s.parse::<u64>().ok()),
        "created_at": stored_time(f.get("created_at")),
        "created_by": stored_json(f.get("created_by")),
        "redacted_at": stored_time(f.get("redacted_at")),
        "redacted_by": stored_json(f.get("redacted_by")),
    })
}

/// The SDK's `api_actor`: a caller of the API, named by its key's id.
pub fn api_actor(api_key_id: &str) -> Value {
    json!({ "type": "api_actor", "api_key_id": api_key_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_their_prefix_and_a_ulid() {
        let id = new_id(STORE_PREFIX);
        assert!(valid_id(&id, STORE_PREFIX));
        assert!(!valid_id(&id, MEMORY_PREFIX));
        assert!(!valid_id("memstore_x", STORE_PREFIX));
        assert!(!valid_id(&format!("{id}:x"), STORE_PREFIX));
    }

    #[test]
    fn hashes_are_lowercase_hex_of_the_utf8_bytes() {
        assert_eq!(
            sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(valid_sha256(&sha256("é")));
        assert!(!valid_sha256(&sha256("é").to_uppercase()));
        assert!(!valid_sha256("abc"));
    }

    #[test]
    fn a_redacted_version_shows_nulls_but_keeps_who_wrote_it() {
        let f = HashMap::from([
            ("memory_id".to_owned(), "mem_1".to_owned()),
            ("operation".to_owned(), "created".to_owned()),
            ("created_at".to_owned(), "1759178010641129".to_owned()),
            ("created_by".to_owned(), api_actor("apikey_1").to_string()),
            ("redacted_at".to_owned(), "1759178010641130".to_owned()),
            ("redacted_by".to_owned(), api_actor("apikey_2").to_string()),
        ]);
        let v = version_object("memstore_1", "memver_1", &f, View::Full);
        assert_eq!(v["path"], Value::Null);
        assert_eq!(v["content"], Value::Null);
        assert_eq!(v["content_sha256"], Value::Null);
        assert_eq!(v["created_by"]["api_key_id"], "apikey_1");
        assert_eq!(v["redacted_by"]["type"], "api_actor");
        assert_eq!(v["created_at"], "2025-09-29T20:33:30.641Z");
    }
}
