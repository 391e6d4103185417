//! API keys: generation, hashing, and the labelled Secret that stores a key's hash in its tenant's namespace.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use sha2::{Digest, Sha256};

/// Label that marks a Secret as holding an API key's hash.
pub const API_KEY_LABEL: &str = "corral.dev/api-key";
/// The Secret data key holding the lowercase hex SHA-256 of the API key.
pub const HASH_KEY: &str = "key-sha256";
/// Prefix of generated keys, so that they are recognisable in logs and secret scanners.
pub const KEY_PREFIX: &str = "sk-corral-";

/// The lowercase hex SHA-256 of `key`.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A key's stable id (`apikey_` and 24 hex characters), as the API names the key that made a change (the
/// `api_key_id` of an `api_actor`): derived from the key's hash, so every gateway replica gives a key the same id
/// for as long as it exists, and the id tells nothing about the key.
pub fn key_id(key_hash: &str) -> String {
    let digest = hash_key(&format!("corral api key id\0{key_hash}"));
    format!("apikey_{}", &digest[..24])
}

/// A new random key: `sk-corral-` and 64 hex characters (256 bits from the OS's generator).
pub fn generate_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{KEY_PREFIX}{hex}"))
}

/// The Secret that makes `key` valid for `namespace`. The key itself is not stored, only its hash.
pub fn key_secret(namespace: &str, name: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (API_KEY_LABEL.to_owned(), "true".to_owned()),
                (
                    corral_api::labels::MANAGED_BY.to_owned(),
                    corral_api::labels::GATEWAY_FIELD_MANAGER.to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            HASH_KEY.to_owned(),
            ByteString(hash_key(key).into_bytes()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// The hash a key Secret holds, normalised (trimmed, lowercase); `None` when it holds none.
pub fn secret_hash(secret: &Secret) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(HASH_KEY)?;
    let text = std::str::from_utf8(&bytes.0).ok()?.trim().to_ascii_lowercase();
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_are_distinct_and_their_secret_holds_only_the_hash() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64);
        let secret = key_secret("team-a", "key-1", &a);
        assert_eq!(secret_hash(&secret), Some(hash_key(&a)));
        let yaml = serde_json::to_string(&secret).unwrap();
        assert!(
            !yaml.contains(&a[KEY_PREFIX.len()..]),
            "the key itself is never stored"
        );
        assert_eq!(secret.metadata.labels.unwrap()[API_KEY_LABEL], "true");
    }

    #[test]
    fn a_keys_id_is_stable_and_distinct_from_its_hash() {
        let hash = hash_key("sk-corral-a");
        let id = key_id(&hash);
        assert_eq!(id, key_id(&hash));
        assert_ne!(id, key_id(&hash_key("sk-corral-b")));
        assert!(id.starts_with("apikey_") && id.len() == 31, "{id}");
        assert!(!hash.contains(&id["apikey_".len()..]));
    }

    #[test]
    fn malformed_hashes_are_ignored() {
        let mut secret = key_secret("ns", "k", "x");
        secret.data = Some(BTreeMap::from([(
            HASH_KEY.to_owned(),
            ByteString(b"not-a-hash".to_vec()),
        )]));
        assert_eq!(secret_hash(&secret), None);
        secret.data = None;
        assert_eq!(secret_hash(&secret), None);
    }
}
