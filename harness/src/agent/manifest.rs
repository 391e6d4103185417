//! An agent manifest file: the `Agent` document plus the ConfigMaps and Secrets it references, as one multi-document
//! YAML file (what `kubectl apply -f` takes). The local runner and the harness's `--agent-file` mode read agents
//! from it instead of the Kubernetes API.

use std::collections::BTreeMap;
use std::path::Path;

use corral_api::Agent;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Deserialize;

use crate::providers::{ApiKey, ProviderInputs};

/// A parsed manifest file.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The Agent.
    pub agent: Agent,
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A document is not valid YAML or not a valid object of its kind.
    #[error("document {index} ({kind}): {message}")]
    Invalid {
        /// Position of the document, from 1.
        index: usize,
        /// Its `kind`.
        kind: String,
        /// What is wrong.
        message: String,
    },
    /// No Agent, or more than one.
    #[error("the manifest must hold exactly one Agent (found {0})")]
    AgentCount(usize),
    /// A reference names an object or key the manifest does not hold.
    #[error("{0}")]
    Missing(String),
}

#[derive(Deserialize)]
struct Kind {
    #[serde(default)]
    kind: String,
}

impl Manifest {
    /// Reads a manifest file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses manifest text. Documents of other kinds (Environment, Session, ...) are ignored.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let mut agents = Vec::new();
        let mut config_maps = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let index = i + 1;
            let value = serde_yaml::Value::deserialize(document).map_err(|e| ManifestError::Invalid {
                index,
                kind: "?".into(),
                message: e.to_string(),
            })?;
            if value.is_null() {
                continue;
            }
            let kind = serde_yaml::from_value::<Kind>(value.clone())
                .map(|k| k.kind)
                .unwrap_or_default();
            let invalid = |e: serde_yaml::Error| ManifestError::Invalid {
                index,
                kind: kind.clone(),
                message: e.to_string(),
            };
            match kind.as_str() {
                "Agent" => agents.push(serde_yaml::from_value::<Agent>(value).map_err(invalid)?),
                "ConfigMap" => {
                    let cm: ConfigMap = serde_yaml::from_value(value).map_err(invalid)?;
                    config_maps.insert(cm.metadata.name.clone().unwrap_or_default(), cm);
                }
                "Secret" => {
                    let secret: Secret = serde_yaml::from_value(value).map_err(invalid)?;
                    secrets.insert(secret.metadata.name.clone().unwrap_or_default(), secret);
                }
                _ => {}
            }
        }
        if agents.len() != 1 {
            return Err(ManifestError::AgentCount(agents.len()));
        }
        let agent = agents.remove(0);
        Ok(Self {
            agent,
            config_maps,
            secrets,
        })
    }

    /// What the Agent's provider needs from the manifest: the script of a scripted provider and the API key. A
    /// key Secret missing from the file falls back to `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` from the environment.
    pub fn provider_inputs(&self) -> Result<ProviderInputs, ManifestError> {
        let provider = &self.agent.spec.model.provider;
        let mut inputs = ProviderInputs::default();
        if let Some(reference) = &provider.script_ref {
            let text = self
                .config_maps
                .get(&reference.name)
                .and_then(|cm| cm.data.as_ref()?.get(&reference.key))
                .ok_or_else(|| {
                    ManifestError::Missing(format!(
                        "scriptRef: the manifest has no ConfigMap {:?} with key {:?}",
                        reference.name, reference.key
                    ))
                })?;
            inputs.script = Some(text.clone());
        }
        if let Some(reference) = &provider.api_key_secret_ref {
            let key = self
                .secrets
                .get(&reference.name)
                .and_then(|s| secret_value(s, &reference.key));
            let key = match key {
                Some(key) => key,
                None => env_key(provider.kind).ok_or_else(|| {
                    ManifestError::Missing(format!(
                        "apiKeySecretRef: the manifest has no Secret {:?} with key {:?} and no API key is set in \
                         the environment",
                        reference.name, reference.key
                    ))
                })?,
            };
            inputs.api_key = Some(ApiKey::new(key));
        } else if provider.kind == corral_api::agent::ProviderKind::Anthropic {
            inputs.api_key = env_key(provider.kind).map(ApiKey::new);
        }
        Ok(inputs)
    }
}

/// A Secret's value for `key`, from `data` (base64-decoded already) or `stringData`.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone())
            .ok()
            .map(|s| s.trim().to_owned());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.trim().to_owned())
}

fn env_key(kind: corral_api::agent::ProviderKind) -> Option<String> {
    let var = match kind {
        corral_api::agent::ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
        corral_api::agent::ProviderKind::Openai => "OPENAI_API_KEY",
        corral_api::agent::ProviderKind::Scripted => return None,
    };
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_scripted_agent_reads_its_script_from_its_configmap() {
        let text = include_str!("../../../examples/agent-scripted.yaml");
        let manifest = Manifest::parse(text).unwrap();
        assert_eq!(manifest.agent.metadata.name.as_deref(), Some("scripted"));
        let inputs = manifest.provider_inputs().unwrap();
        let script = inputs.script.unwrap();
        crate::providers::ScriptedProvider::parse(&script).unwrap();
        assert!(script.contains("tool_use"), "{script}");
    }

    #[test]
    fn bad_manifests_give_clear_errors() {
        assert!(matches!(
            Manifest::parse("kind: ConfigMap\nmetadata: {name: x}\n"),
            Err(ManifestError::AgentCount(0))
        ));
        let err = Manifest::parse("kind: Agent\nspec: 3\n").unwrap_err();
        assert!(err.to_string().contains("document 1 (Agent)"), "{err}");
        let missing = Manifest::parse(
            "kind: Agent\nmetadata: {name: a}\nspec: {model: {id: m, provider: {type: scripted, scriptRef: {name: s, key: k}}}}\n",
        )
        .unwrap()
        .provider_inputs()
        .unwrap_err();
        assert!(missing.to_string().contains("scriptRef"), "{missing}");
    }
}
