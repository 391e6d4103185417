//! The contract between the operator, the sandbox and the egress proxy (pure; no I/O).
//!
//! A sandbox pod reaches the network through Corral's egress proxy with a proxy identity computed by the operator
//! when it creates the pod: the user `<namespace>/<pod>` and a password that is an HMAC of it under a key only the
//! operator and the proxy hold. The identity names the pod, not the session, so warm pods are created before any
//! session exists; the proxy finds the session from the pod's label when a request arrives (claim time binding).
//!
//! A vault credential of type `environment_variable` appears in the sandbox only as a placeholder value of its
//! `secret_name`; the proxy replaces the placeholder with the secret on requests to the credential's hosts.

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use sha2::Sha256;

use crate::{Session, vault};

/// The port the egress proxy listens on.
pub const PROXY_PORT: u16 = 3128;

/// The placeholder a credential's `secret_name` variable holds in the sandbox.
pub fn placeholder(credential_id: &str) -> String {
    format!("corral-placeholder-{credential_id}")
}

/// The proxy password of pod `namespace/pod` under `key`: lowercase hex of HMAC-SHA256(key, "namespace/pod").
pub fn proxy_password(key: &[u8], namespace: &str, pod: &str) -> String {
    // HMAC takes keys of any length: this never fails, and an empty password is never accepted.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{namespace}/{pod}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The proxy user of pod `namespace/pod`: `namespace.pod` (a namespace name has no dot, so the first dot splits
/// it, and the user needs no escaping in a proxy URL).
pub fn proxy_user(namespace: &str, pod: &str) -> String {
    format!("{namespace}.{pod}")
}

/// Checks a proxy identity: `Some((namespace, pod))` when `password` is the pod's, compared in constant time.
pub fn verify_proxy_identity(key: &[u8], user: &str, password: &str) -> Option<(String, String)> {
    let (namespace, pod) = user.split_once('.')?;
    let expected = proxy_password(key, namespace, pod);
    let equal = !expected.is_empty()
        && expected.len() == password.len()
        && expected
            .bytes()
            .zip(password.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    equal.then(|| (namespace.to_owned(), pod.to_owned()))
}

/// The `corral.dev/object` label value of a credential grant: a Secret the operator writes, in the egress proxy's
/// grants namespace, for each sandbox pod bound to a session with vaults. It hands the proxy exactly the
/// `environment_variable` credentials of that session, so the proxy reads no other Secret.
pub const GRANT_OBJECT: &str = "egress-grant";

/// The data key of a grant: a JSON object from each credential id to its `auth` JSON, as the vault credential
/// Secret stores it. The grant also carries the label `corral.dev/session` naming the session it was written for.
pub const GRANT_CREDENTIALS_KEY: &str = "credentials";

/// The name of the grant of pod `namespace/pod`: `namespace.pod` (a namespace name has no dot).
pub fn grant_name(namespace: &str, pod: &str) -> String {
    format!("{namespace}.{pod}")
}

/// The credential `secret` holds for `session`: its id (the Secret's name) and its `auth` JSON when it is a vault
/// credential Secret in the session's namespace, of a vault the session references, and not archived; `None`
/// otherwise. The egress proxy (reading vaults itself) and the operator (writing grants) pick credentials with it.
pub fn session_credential<'a>(session: &Session, secret: &'a Secret) -> Option<(&'a str, &'a [u8])> {
    let meta = &secret.metadata;
    if meta.namespace.is_none() || meta.namespace != session.metadata.namespace {
        return None;
    }
    let labels = meta.labels.as_ref()?;
    if labels.get(vault::OBJECT).map(String::as_str) != Some(vault::OBJECT_CREDENTIAL) {
        return None;
    }
    let vault_name = labels.get(vault::VAULT)?;
    if !session.spec.vault_refs.iter().any(|r| &r.name == vault_name) {
        return None;
    }
    if meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(crate::labels::ARCHIVED_AT))
    {
        return None;
    }
    let auth = secret.data.as_ref()?.get(vault::AUTH_KEY)?;
    Some((meta.name.as_deref()?, &auth.0))
}

/// Whether a credential's `auth` JSON is one the egress proxy injects (type `environment_variable`).
pub fn is_injected(auth: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(auth)
        .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some(INJECTED_TYPE))
}

/// The credential type the egress proxy injects.
pub const INJECTED_TYPE: &str = "environment_variable";

/// Registry hosts a `limited` environment reaches with `allowPackageManagers: true`.
pub const PACKAGE_MANAGER_HOSTS: &[&str] = &[
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "storage.googleapis.com",
    "rubygems.org",
    "index.rubygems.org",
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "security.ubuntu.com",
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn credential(ns: &str, name: &str, vault_name: &str, archived: bool) -> Secret {
        let mut s = Secret::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.metadata.labels = Some(BTreeMap::from([
            (vault::OBJECT.into(), vault::OBJECT_CREDENTIAL.into()),
            (vault::VAULT.into(), vault_name.into()),
        ]));
        if archived {
            s.metadata.annotations = Some(BTreeMap::from([(
                crate::labels::ARCHIVED_AT.into(),
                "2026-01-01T00:00:00Z".into(),
            )]));
        }
        s.data = Some(BTreeMap::from([(
            vault::AUTH_KEY.into(),
            ByteString(br#"{"type":"environment_variable"}"#.to_vec()),
        )]));
        s
    }

    #[test]
    fn a_session_gets_the_live_credentials_of_its_own_vaults_only() {
        let spec: crate::SessionSpec = serde_json::from_value(serde_json::json!({
            "agent": {"name": "a"}, "environmentRef": {"name": "e"}, "vaultRefs": [{"name": "v1"}]
        }))
        .unwrap();
        let mut session = Session::new("s1", spec);
        session.metadata.namespace = Some("team".into());

        let mine = credential("team", "vcrd-1", "v1", false);
        assert_eq!(
            session_credential(&session, &mine),
            Some(("vcrd-1", &br#"{"type":"environment_variable"}"#[..]))
        );
        assert!(is_injected(session_credential(&session, &mine).unwrap().1));
        assert_eq!(
            session_credential(&session, &credential("team", "vcrd-2", "v2", false)),
            None,
            "a vault the session does not reference"
        );
        assert_eq!(
            session_credential(&session, &credential("other", "vcrd-3", "v1", false)),
            None,
            "a vault of the same name in another namespace"
        );
        assert_eq!(
            session_credential(&session, &credential("team", "vcrd-4", "v1", true)),
            None,
            "an archived credential"
        );
        let mut unlabelled = mine.clone();
        unlabelled.metadata.labels.as_mut().unwrap().remove(vault::OBJECT);
        assert_eq!(
            session_credential(&session, &unlabelled),
            None,
            "not a credential"
        );
        assert!(!is_injected(br#"{"type":"mcp_oauth"}"#));
        assert!(!is_injected(b"nonsense"));
    }

    #[test]
    fn an_identity_verifies_only_for_its_own_pod_and_key() {
        let key = b"k3y";
        let password = proxy_password(key, "team", "sandbox-s1");
        assert_eq!(password.len(), 64);
        assert_eq!(
            verify_proxy_identity(key, &proxy_user("team", "sandbox-s1"), &password),
            Some(("team".into(), "sandbox-s1".into()))
        );
        assert_eq!(
            verify_proxy_identity(key, "team.sandbox-s2", &password),
            None,
            "another pod"
        );
        assert_eq!(
            verify_proxy_identity(key, "other.sandbox-s1", &password),
            None,
            "another namespace"
        );
        assert_eq!(
            verify_proxy_identity(b"other", "team.sandbox-s1", &password),
            None,
            "another key"
        );
        assert_eq!(
            verify_proxy_identity(key, "sandbox-s1", &password),
            None,
            "no namespace"
        );
    }
}
