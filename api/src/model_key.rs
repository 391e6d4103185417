//! Which Secrets an Agent's `apiKeySecretRef` may name. The harness sends the named value to the model's
//! `baseUrl`, a server of the Agent author's choosing, so a reference reaches only Secrets meant as model keys:
//!
//! - a Secret Corral keeps for itself is never readable through a reference, whatever its labels say: vault
//!   credentials (recognised by their Secret `type`, which cannot be changed, or their label), any Secret carrying
//!   the [`vault::OBJECT`] label (vaults, grants) and any Secret labelled as managed by a Corral component (sandbox
//!   tokens, the harness's Redis URL, API keys);
//! - any other Secret must carry the label [`CREDENTIAL_LABEL`]`=`[`CREDENTIAL_MODEL`], which whoever creates the
//!   model key sets (`kubectl label secret <name> corral.dev/credential=model`).

use k8s_openapi::api::core::v1::Secret;

use crate::{labels, vault};

/// Label marking a Secret as a credential of a given kind.
pub const CREDENTIAL_LABEL: &str = "corral.dev/credential";
/// [`CREDENTIAL_LABEL`] value of a model key: the only Secrets `apiKeySecretRef` may name.
pub const CREDENTIAL_MODEL: &str = "model";

/// `app.kubernetes.io/managed-by` values of Corral's components: Secrets they manage are internal.
const CORRAL_MANAGERS: [&str; 4] = [
    vault::MANAGED_BY_VALUE,
    labels::OPERATOR_FIELD_MANAGER,
    labels::GATEWAY_FIELD_MANAGER,
    labels::HARNESS_FIELD_MANAGER,
];

/// Why `secret` cannot be a model key, as a sentence naming it, or `None` when it may.
pub fn refusal(secret: &Secret) -> Option<String> {
    credential_refusal(secret, CREDENTIAL_MODEL, "model key")
}

/// Why `secret` cannot be a credential of kind `kind` (a [`CREDENTIAL_LABEL`] value; `what` names it in
/// sentences), or `None` when it may: never a Secret Corral keeps for itself, and only one labelled as that kind.
pub(crate) fn credential_refusal(secret: &Secret, kind: &str, what: &str) -> Option<String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let label = |key: &str| label(secret, key);
    if secret.type_.as_deref() == Some(vault::CREDENTIAL_SECRET_TYPE)
        || label(vault::OBJECT) == Some(vault::OBJECT_CREDENTIAL)
    {
        return Some(format!(
            "Secret {name:?} is a vault credential; vault credentials are never readable as a {what}"
        ));
    }
    if let Some(object) = label(vault::OBJECT) {
        return Some(format!(
            "Secret {name:?} is a Corral {object} object and is never readable as a {what}"
        ));
    }
    if let Some(manager) = label(labels::MANAGED_BY).filter(|m| CORRAL_MANAGERS.contains(m)) {
        return Some(format!(
            "Secret {name:?} is managed by {manager} for Corral's own use and is never readable as a {what}"
        ));
    }
    if label(CREDENTIAL_LABEL) != Some(kind) {
        return Some(format!(
            "Secret {name:?} lacks the label {CREDENTIAL_LABEL}={kind} that marks a {what} \
             (`kubectl label secret {name} {CREDENTIAL_LABEL}={kind}`)"
        ));
    }
    None
}

/// The value of `secret`'s label `key`.
pub(crate) fn label<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn secret(type_: Option<&str>, labels: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("keys".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            },
            type_: type_.map(str::to_owned),
            ..Secret::default()
        }
    }

    #[test]
    fn only_a_labelled_model_key_is_readable() {
        assert_eq!(
            refusal(&secret(Some("Opaque"), &[(CREDENTIAL_LABEL, CREDENTIAL_MODEL)])),
            None
        );
        let unlabelled = refusal(&secret(Some("Opaque"), &[])).unwrap();
        assert!(
            unlabelled.contains("\"keys\"") && unlabelled.contains("corral.dev/credential=model"),
            "{unlabelled}"
        );
        let other_kind = refusal(&secret(None, &[(CREDENTIAL_LABEL, "git")])).unwrap();
        assert!(other_kind.contains("lacks the label"), "{other_kind}");
    }

    #[test]
    fn vault_credentials_are_refused_whatever_their_labels() {
        let model = (CREDENTIAL_LABEL, CREDENTIAL_MODEL);
        // By type alone: a tenant can edit labels but not a Secret's type.
        let by_type = refusal(&secret(Some(vault::CREDENTIAL_SECRET_TYPE), &[model])).unwrap();
        assert!(by_type.contains("vault credential"), "{by_type}");
        let by_label = refusal(&secret(
            Some("Opaque"),
            &[model, (vault::OBJECT, vault::OBJECT_CREDENTIAL)],
        ));
        assert!(by_label.unwrap().contains("vault credential"));
    }

    #[test]
    fn corral_internal_secrets_are_refused_even_when_labelled() {
        let s = secret(
            Some("Opaque"),
            &[
                (CREDENTIAL_LABEL, CREDENTIAL_MODEL),
                (labels::MANAGED_BY, labels::OPERATOR_FIELD_MANAGER),
            ],
        );
        assert!(refusal(&s).unwrap().contains("managed by corral-operator"));
        let vault = secret(
            None,
            &[
                (CREDENTIAL_LABEL, CREDENTIAL_MODEL),
                (vault::OBJECT, vault::OBJECT_VAULT),
            ],
        );
        assert!(refusal(&vault).unwrap().contains("Corral vault object"));
    }
}
