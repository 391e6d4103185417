//! Small types shared by several resources.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Free-form key/value pairs, as the API's `metadata`: at most 16 pairs, keys up to 64 characters, values up to
/// 512 characters.
pub type Metadata = BTreeMap<String, String>;

/// A reference to one key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the namespace of the referencing object.
    #[x_kube(validation = Rule::new("self.size() > 0").message("secret name must not be empty"))]
    pub name: String,
    /// Key within the Secret's data.
    #[x_kube(validation = Rule::new("self.size() > 0").message("secret key must not be empty"))]
    pub key: String,
}

/// A reference to one key of a ConfigMap in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap, in the namespace of the referencing object.
    #[x_kube(validation = Rule::new("self.size() > 0").message("configmap name must not be empty"))]
    pub name: String,
    /// Key within the ConfigMap's data.
    #[x_kube(validation = Rule::new("self.size() > 0").message("configmap key must not be empty"))]
    pub key: String,
}

/// A reference to another object of the same namespace by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the referenced object (its API id).
    #[x_kube(validation = Rule::new("self.size() > 0").message("name must not be empty"))]
    #[schemars(length(max = 253))]
    pub name: String,
}

/// CEL rules for a `metadata` map, matching the API's limits.
pub const METADATA_RULE: &str =
    "self.size() <= 16 && self.all(k, k.size() > 0 && k.size() <= 64 && self[k].size() <= 512)";
/// The message shown when [`METADATA_RULE`] fails.
pub const METADATA_RULE_MESSAGE: &str =
    "metadata holds at most 16 pairs, keys of 1 to 64 characters and values of up to 512 characters";
