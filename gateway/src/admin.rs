//! `corral-gateway create-key`: makes an API key for a namespace.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::keys::{generate_key, key_secret};

/// Creates the namespace if needed, stores a new key's hash in a Secret named `name` (generated when `None`), and
/// returns the key and the Secret's name. The key is shown once: only its hash is kept.
pub async fn create_key(
    client: &Client,
    namespace: &str,
    name: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace } });
    namespaces
        .patch(
            namespace,
            &PatchParams::apply(corral_api::labels::GATEWAY_FIELD_MANAGER),
            &Patch::Apply(&ns),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating namespace {namespace:?}: {e}"))?;
    let key = generate_key().map_err(|e| anyhow::anyhow!("generating a key: {e}"))?;
    let name = name.map_or_else(
        || format!("api-key-{}", ulid::Ulid::new().to_string().to_ascii_lowercase()),
        str::to_owned,
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let params = PostParams {
        field_manager: Some(corral_api::labels::GATEWAY_FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    secrets
        .create(&params, &key_secret(namespace, &name, &key))
        .await
        .map_err(|e| anyhow::anyhow!("creating Secret {namespace}/{name}: {e}"))?;
    Ok((key, name))
}
