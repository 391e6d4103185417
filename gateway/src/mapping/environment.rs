//! Environments: API request → `EnvironmentSpec`, and `Environment` → the API's Environment object.
//!
//! Corral's extension: `sandbox` carries the Kubernetes side of the environment (image, resources, scheduling,
//! workspace, warm pool, idle timeout) in the CRD's own camelCase shape, in requests and responses alike.

use std::collections::BTreeMap;

use corral_api::{
    Environment, EnvironmentSpec,
    environment::{EnvironmentConfig, Networking, NetworkingType, Packages, SandboxSpec, Scope},
    validation::validate_environment,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{archived_at, created_at, id, patch_metadata, spec_error, time, updated_at};
use crate::{
    body::{nullable, strict_nullable, strict_option},
    error::ApiError,
};

/// `POST /v1/environments`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentCreate {
    /// Required, 1 to 256 characters.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// `{type:"cloud", networking?, packages?}`.
    #[serde(default, deserialize_with = "strict_option")]
    pub config: Option<ConfigParam>,
    /// Free-form pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// `organization` or `account`.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Corral's extension: how sandbox pods run.
    #[serde(default, deserialize_with = "strict_option")]
    pub sandbox: Option<SandboxSpec>,
}

/// `POST /v1/environments/{id}`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentUpdate {
    /// New name; cannot be cleared.
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    /// `null` clears, `""` is stored.
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    /// Omitted sub-fields keep their values.
    #[serde(default, deserialize_with = "strict_option")]
    pub config: Option<ConfigParam>,
    /// A patch: a string sets, `null` or `""` deletes.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
    /// `null` clears.
    #[serde(default, deserialize_with = "nullable")]
    pub scope: Option<Option<Scope>>,
    /// Corral's extension, replaced whole; `null` restores the defaults.
    #[serde(default, deserialize_with = "strict_nullable")]
    pub sandbox: Option<Option<SandboxSpec>>,
}

/// The API's environment `config`.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ConfigParam {
    /// `cloud` (or `self_hosted`, which Corral does not run).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Network access.
    #[serde(default, deserialize_with = "strict_option")]
    pub networking: Option<NetworkingParam>,
    /// Packages by manager.
    #[serde(default, deserialize_with = "strict_option")]
    pub packages: Option<PackagesParam>,
}

/// `{type:"unrestricted"}` or `{type:"limited", ...}`.
#[derive(Deserialize, Debug, Clone)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum NetworkingParam {
    /// Any public host.
    Unrestricted {},
    /// Only the listed hosts.
    Limited {
        /// Hosts the sandbox may reach.
        #[serde(default)]
        allowed_hosts: Option<Vec<String>>,
        /// Also the agent's MCP servers.
        #[serde(default)]
        allow_mcp_servers: Option<bool>,
        /// Also the package registries.
        #[serde(default)]
        allow_package_managers: Option<bool>,
    },
}

/// `{type?:"packages", apt?, cargo?, gem?, go?, npm?, pip?}`.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct PackagesParam {
    /// `packages`, when sent.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Debian packages.
    #[serde(default)]
    pub apt: Option<Vec<String>>,
    /// Rust crates.
    #[serde(default)]
    pub cargo: Option<Vec<String>>,
    /// Ruby gems.
    #[serde(default)]
    pub gem: Option<Vec<String>>,
    /// Go modules.
    #[serde(default)]
    pub go: Option<Vec<String>>,
    /// npm packages.
    #[serde(default)]
    pub npm: Option<Vec<String>>,
    /// Python packages.
    #[serde(default)]
    pub pip: Option<Vec<String>>,
}

/// Builds the spec of a new environment from `POST /v1/environments`.
pub fn spec_from_create(req: EnvironmentCreate) -> Result<EnvironmentSpec, ApiError> {
    let mut config = EnvironmentConfig::default();
    if let Some(param) = req.config {
        merge_config(&mut config, param, false)?;
    }
    let spec = EnvironmentSpec {
        name: Some(req.name),
        description: req.description,
        config,
        sandbox: req.sandbox.unwrap_or_default(),
        scope: req.scope,
        metadata: req.metadata.unwrap_or_default(),
    };
    check(&spec)?;
    Ok(spec)
}

/// Applies `POST /v1/environments/{id}` to the current spec.
pub fn apply_update(current: &EnvironmentSpec, req: EnvironmentUpdate) -> Result<EnvironmentSpec, ApiError> {
    let mut spec = current.clone();
    match req.name {
        Some(Some(name)) => spec.name = Some(name),
        Some(None) => return Err(ApiError::field("name", "cannot be cleared")),
        None => {}
    }
    if let Some(description) = req.description {
        spec.description = description;
    }
    if let Some(param) = req.config {
        merge_config(&mut spec.config, param, true)?;
    }
    if let Some(patch) = &req.metadata {
        spec.metadata = patch_metadata(&spec.metadata, patch, true);
    }
    if let Some(scope) = req.scope {
        spec.scope = scope;
    }
    if let Some(sandbox) = req.sandbox {
        spec.sandbox = sandbox.unwrap_or_default();
    }
    check(&spec)?;
    Ok(spec)
}

fn merge_config(config: &mut EnvironmentConfig, param: ConfigParam, update: bool) -> Result<(), ApiError> {
    match param.kind.as_deref() {
        None | Some("cloud") => {}
        Some("self_hosted") if update => {
            return Err(ApiError::field("config.type", "cannot change after create")
                .with_code("invalid_config_type_change"));
        }
        Some("self_hosted") => {
            return Err(ApiError::field(
                "config.type",
                "self_hosted environments are not supported by Corral; use cloud",
            ));
        }
        Some(other) => {
            return Err(ApiError::field(
                "config.type",
                format!("unknown type {other:?}; expected cloud"),
            ));
        }
    }
    if let Some(networking) = param.networking {
        config.networking = match networking {
            NetworkingParam::Unrestricted {} => Networking::default(),
            NetworkingParam::Limited {
                allowed_hosts,
                allow_mcp_servers,
                allow_package_managers,
            } => Networking {
                kind: NetworkingType::Limited,
                allowed_hosts,
                allow_mcp_servers,
                allow_package_managers,
            },
        };
    }
    if let Some(p) = param.packages {
        if let Some(other) = p.kind.as_deref().filter(|kind| *kind != "packages") {
            return Err(ApiError::field(
                "config.packages.type",
                format!("unknown type {other:?}; expected packages"),
            ));
        }
        let packages = &mut config.packages;
        for (slot, new) in [
            (&mut packages.apt, p.apt),
            (&mut packages.cargo, p.cargo),
            (&mut packages.gem, p.gem),
            (&mut packages.go, p.go),
            (&mut packages.npm, p.npm),
            (&mut packages.pip, p.pip),
        ] {
            if new.is_some() || !update {
                *slot = new;
            }
        }
    }
    Ok(())
}

/// Checks the spec with [`validate_environment`] (the rules the CRD's CEL mirrors), naming the API's fields.
pub fn check(spec: &EnvironmentSpec) -> Result<(), ApiError> {
    validate_environment(spec).map_err(spec_error)
}

/// The API's Environment object.
pub fn environment_object(env: &Environment) -> Value {
    let spec = &env.spec;
    let net = &spec.config.networking;
    let networking = match net.kind {
        NetworkingType::Unrestricted => json!({ "type": "unrestricted" }),
        NetworkingType::Limited => json!({
            "type": "limited",
            "allowed_hosts": net.allowed_hosts.clone().unwrap_or_default(),
            "allow_mcp_servers": net.allow_mcp_servers.unwrap_or(false),
            "allow_package_managers": net.allow_package_managers.unwrap_or(false),
        }),
    };
    let Packages {
        apt,
        cargo,
        gem,
        go,
        npm,
        pip,
    } = spec.config.packages.clone();
    json!({
        "id": id(&env.metadata),
        "type": "environment",
        "name": env.display_name(),
        "description": spec.description,
        "config": {
            "type": "cloud",
            "networking": networking,
            "packages": {
                "type": "packages",
                "apt": apt.unwrap_or_default(),
                "cargo": cargo.unwrap_or_default(),
                "gem": gem.unwrap_or_default(),
                "go": go.unwrap_or_default(),
                "npm": npm.unwrap_or_default(),
                "pip": pip.unwrap_or_default(),
            },
        },
        "metadata": spec.metadata,
        "scope": spec.scope,
        "sandbox": spec.sandbox,
        "created_at": time(created_at(&env.metadata)),
        "updated_at": time(updated_at(&env.metadata)),
        "archived_at": archived_at(&env.metadata),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::parse;

    fn create(body: Value) -> Result<EnvironmentSpec, ApiError> {
        spec_from_create(parse(body.to_string().as_bytes())?)
    }

    #[test]
    fn defaults_are_resolved_in_the_object() {
        let env = Environment::new("env-1", create(json!({ "name": "py" })).unwrap());
        let obj = environment_object(&env);
        assert_eq!(obj["type"], "environment");
        assert_eq!(obj["name"], "py");
        assert_eq!(obj["config"]["networking"], json!({ "type": "unrestricted" }));
        assert_eq!(obj["config"]["packages"]["pip"], json!([]));
        assert_eq!(obj["config"]["packages"]["type"], "packages");
        for f in ["id", "created_at", "updated_at", "metadata", "config"] {
            assert!(!obj[f].is_null(), "{f}");
        }
    }

    #[test]
    fn request_round_trips() {
        let body = json!({
            "name": "py", "description": "python", "scope": "organization", "metadata": { "a": "b" },
            "config": { "type": "cloud",
                "networking": { "type": "limited", "allowed_hosts": ["pypi.org", "*.example.com:8443"], "allow_package_managers": true },
                "packages": { "pip": ["requests==2.0"] } },
            "sandbox": { "image": "python:3.12", "idleTimeout": "30m", "workspace": { "type": "persistent", "size": "5Gi" } }
        });
        let spec = create(body).unwrap();
        assert_eq!(spec.sandbox.image.as_deref(), Some("python:3.12"));
        let obj = environment_object(&Environment::new("env-1", spec.clone()));
        assert_eq!(obj["config"]["networking"]["allow_mcp_servers"], false);
        assert_eq!(
            obj["config"]["networking"]["allowed_hosts"][1],
            "*.example.com:8443"
        );
        assert_eq!(obj["scope"], "organization");
        assert_eq!(obj["sandbox"]["idleTimeout"], "30m");
        // Read-only fields are not request fields: refused by name.
        let err = create(obj.clone()).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message.ends_with(": Extra inputs are not permitted"),
            "{}",
            err.message
        );
        let mut obj = obj;
        for field in ["id", "type", "created_at", "updated_at", "archived_at"] {
            obj.as_object_mut().unwrap().remove(field);
        }
        let again = create(obj).unwrap();
        assert_eq!(again.config.packages.pip, spec.config.packages.pip);
        assert_eq!(again.sandbox, spec.sandbox);
        assert_eq!(
            again.config.networking.allowed_hosts,
            spec.config.networking.allowed_hosts
        );
    }

    /// The SDK types these as `Optional[...]`, so a client may send null; null means absent (openapi.yaml says so).
    #[test]
    fn the_sdks_nullable_config_fields_take_null_as_absent() {
        let spec = create(
            json!({ "name": "x", "config": { "type": "cloud", "networking": null, "packages": null } }),
        )
        .unwrap();
        assert_eq!(spec.config, EnvironmentConfig::default());
        let spec = create(json!({ "name": "x", "config": { "type": "cloud",
            "networking": { "type": "limited", "allowed_hosts": null, "allow_mcp_servers": null, "allow_package_managers": null } } }))
        .unwrap();
        assert_eq!(spec.config.networking.allowed_hosts, None);
        let spec = create(json!({ "name": "x", "config": { "type": "cloud",
            "packages": { "type": null, "apt": null, "pip": ["a"] } } }))
        .unwrap();
        assert_eq!(spec.config.packages.pip, Some(vec!["a".to_owned()]));
        assert_eq!(spec.config.packages.apt, None);
    }

    #[test]
    fn an_array_or_a_wrong_type_where_an_object_is_expected_is_refused() {
        for (config, field) in [
            (json!({ "packages": [] }), "config.packages"),
            (json!({ "networking": [] }), "config.networking"),
            (json!({ "packages": { "type": "AAA" } }), "config.packages.type"),
            // Nested strict objects join their paths (the SDK conformance suite reads this one).
            (
                json!({ "networking": { "type": "bogus" } }),
                "config.networking.type",
            ),
            (
                json!({ "networking": { "type": "limited" }, "packages": "x" }),
                "config.packages",
            ),
        ] {
            let err = create(json!({ "name": "x", "config": config })).unwrap_err();
            assert!(
                err.message.starts_with(&format!("{field}:")),
                "{config}: {}",
                err.message
            );
        }
    }

    #[test]
    fn invalid_input_names_the_field() {
        let err = create(json!({ "name": "x", "config": { "type": "cloud", "networking": { "type": "limited" }, "packages": { "apt": ["curl"] } } })).unwrap_err();
        assert!(err.message.starts_with("config.packages:"), "{}", err.message);
        let err = create(json!({ "name": "x", "config": { "type": "self_hosted" } })).unwrap_err();
        assert!(err.message.starts_with("config.type:"), "{}", err.message);
        let err = create(json!({ "name": "x", "config": { "networking": { "type": "limited", "allowed_hosts": ["bad host"] } } })).unwrap_err();
        assert!(
            err.message.starts_with("config.networking.allowed_hosts[0]:"),
            "{}",
            err.message
        );
        let err = create(json!({ "name": "x", "sandbox": { "idleTimeout": "1s" } })).unwrap_err();
        assert!(
            err.message.starts_with("sandbox.idle_timeout:"),
            "{}",
            err.message
        );
        let err = create(json!({ "name": "x", "config": { "networking": { "type": "open" } } })).unwrap_err();
        assert!(err.message.starts_with("config.networking"), "{}", err.message);
        // The sandbox's own type is lenient (it is read back from Kubernetes); the API is not.
        let err = create(json!({ "name": "x", "sandbox": { "imag": "python:3.12" } })).unwrap_err();
        assert_eq!(err.message, "sandbox.imag: Extra inputs are not permitted");
        let err = create(
            json!({ "name": "x", "sandbox": { "workspace": { "type": "persistent", "sise": "1Gi" } } }),
        )
        .unwrap_err();
        assert!(
            err.message.starts_with("sandbox.workspace.sise:"),
            "{}",
            err.message
        );
        let err = parse::<EnvironmentUpdate>(br#"{"sandbox":{"a":{"a":1}}}"#).unwrap_err();
        assert!(err.message.starts_with("sandbox.a:"), "{}", err.message);
        assert!(parse::<EnvironmentUpdate>(br#"{"sandbox":null}"#).is_ok());
        // The SDK types `config` as `Optional[Config]`: `null` is the same as leaving it out.
        let absent = create(json!({ "name": "x" })).unwrap();
        let null = create(json!({ "name": "x", "config": null, "sandbox": null })).unwrap();
        assert_eq!(
            serde_json::to_value(&null).unwrap(),
            serde_json::to_value(&absent).unwrap()
        );
        let update = parse::<EnvironmentUpdate>(br#"{"config":null}"#).unwrap();
        assert!(update.config.is_none());
        // serde reads a struct from an array too; the API does not.
        let err = create(json!({ "name": "x", "config": [null, null] })).unwrap_err();
        assert!(
            err.message.starts_with("config: must be an object"),
            "{}",
            err.message
        );
        let err = create(
            json!({ "name": "x", "config": { "networking": { "type": "unrestricted", "hosts": [] } } }),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "config.networking.hosts: Extra inputs are not permitted"
        );
        let err = parse::<EnvironmentUpdate>(b"[null, null]").unwrap_err();
        assert_eq!(err.message, "body: must be a JSON object");
    }

    #[test]
    fn update_merges_config_and_patches_metadata() {
        let spec = create(
            json!({ "name": "x", "description": "d", "metadata": { "a": "1", "b": "2" },
            "config": { "packages": { "pip": ["a"], "npm": ["b"] } } }),
        )
        .unwrap();
        let upd = |b: Value| apply_update(&spec, parse(b.to_string().as_bytes()).unwrap());
        let s = upd(json!({ "config": { "packages": { "pip": ["c"] } }, "metadata": { "a": "", "b": null, "c": "3" }, "description": "" })).unwrap();
        assert_eq!(s.config.packages.pip, Some(vec!["c".to_owned()]));
        assert_eq!(
            s.config.packages.npm,
            Some(vec!["b".to_owned()]),
            "omitted sub-fields keep their values"
        );
        assert_eq!(s.metadata, [("c".to_owned(), "3".to_owned())].into());
        assert_eq!(s.description.as_deref(), Some(""), "\"\" is stored as is");
        let s = upd(json!({ "description": null })).unwrap();
        assert_eq!(s.description, None);
        let err = upd(json!({ "config": { "type": "self_hosted" } })).unwrap_err();
        assert_eq!(err.error_code, Some("invalid_config_type_change"));
    }
}
