//! The platform's sandbox policy: which RuntimeClasses, tolerations and node selectors an Environment may ask for.
//!
//! API users write Environments, so without a policy any of them could pick the runtime that isolates their code
//! (or none), tolerate the taints that keep workloads off system nodes, or pin sandboxes to chosen nodes. The
//! operator refuses an Environment that asks for anything the policy does not allow: its `Ready` condition says
//! what and why, and no sandbox pod is made for it.

use std::collections::BTreeMap;

use corral_api::{environment::SandboxSpec, validation::SpecError};
use k8s_openapi::api::core::v1::Toleration;
use serde::Deserialize;

/// The condition reason of a spec the sandbox policy refuses.
pub const NOT_ALLOWED: &str = "NotAllowed";

/// What the platform allows sandboxes to ask for (the operator's `--sandbox-policy`, JSON).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxPolicy {
    /// RuntimeClasses an Environment may name in `spec.sandbox.runtimeClassName` (none by default).
    #[serde(default)]
    pub runtime_classes: Vec<String>,
    /// The RuntimeClass of sandboxes whose Environment names none (one of `runtimeClasses`).
    #[serde(default)]
    pub default_runtime_class: Option<String>,
    /// Every sandbox runs under one of `runtimeClasses`: an Environment that names none gets the default one, or
    /// is refused when there is no default.
    #[serde(default)]
    pub require_runtime_class: bool,
    /// Tolerations an Environment may list. An entry allows a toleration with the same key and operator (`Equal`
    /// when unset); its value and effect, when set, must match too (unset: any value, any effect).
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Node labels an Environment may select on, each with its allowed values (an empty list allows any value).
    #[serde(default)]
    pub node_selectors: BTreeMap<String, Vec<String>>,
}

impl SandboxPolicy {
    /// Parses the policy from JSON (or YAML) and checks that it is coherent.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut policy: Self =
            serde_yaml::from_str(text).map_err(|e| format!("not a sandbox policy: {e}"))?;
        // The chart writes an empty string for "no default".
        policy.default_runtime_class = policy.default_runtime_class.filter(|c| !c.is_empty());
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(default) = &self.default_runtime_class
            && !self.runtime_classes.contains(default)
        {
            return Err(format!(
                "defaultRuntimeClass {default:?} is not one of runtimeClasses {:?}",
                self.runtime_classes
            ));
        }
        if self.require_runtime_class && self.runtime_classes.is_empty() {
            return Err("requireRuntimeClass needs at least one of runtimeClasses".into());
        }
        Ok(())
    }

    /// The RuntimeClass a sandbox of this spec runs under: the Environment's own, else the policy's default.
    pub fn runtime_class(&self, sandbox: &SandboxSpec) -> Option<String> {
        sandbox
            .runtime_class_name
            .clone()
            .or_else(|| self.default_runtime_class.clone())
    }

    /// Checks an Environment's sandbox against the policy; the error names the field and says what is allowed.
    pub fn check(&self, sandbox: &SandboxSpec) -> Result<(), SpecError> {
        match (&sandbox.runtime_class_name, self.runtime_class(sandbox)) {
            (Some(asked), _) if !self.runtime_classes.contains(asked) => {
                return Err(not_allowed(
                    "spec.sandbox.runtimeClassName",
                    format!(
                        "RuntimeClass {asked:?} is not allowed by the operator's sandbox policy (allowed: {})",
                        list(&self.runtime_classes)
                    ),
                ));
            }
            (None, None) if self.require_runtime_class => {
                return Err(not_allowed(
                    "spec.sandbox.runtimeClassName",
                    format!(
                        "the operator's sandbox policy requires a RuntimeClass (one of: {})",
                        list(&self.runtime_classes)
                    ),
                ));
            }
            _ => {}
        }
        for (i, t) in sandbox.tolerations.iter().enumerate() {
            if !self.tolerations.iter().any(|allowed| tolerates(allowed, t)) {
                return Err(not_allowed(
                    format!("spec.sandbox.tolerations[{i}]"),
                    format!(
                        "toleration {} is not allowed by the operator's sandbox policy",
                        describe(t)
                    ),
                ));
            }
        }
        for (key, value) in &sandbox.node_selector {
            let allowed = self
                .node_selectors
                .get(key)
                .is_some_and(|values| values.is_empty() || values.contains(value));
            if !allowed {
                return Err(not_allowed(
                    format!("spec.sandbox.nodeSelector[{key:?}]"),
                    format!("node selector {key}={value} is not allowed by the operator's sandbox policy"),
                ));
            }
        }
        Ok(())
    }
}

fn not_allowed(field: impl Into<String>, message: String) -> SpecError {
    SpecError {
        field: field.into(),
        message,
        reason: NOT_ALLOWED,
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Whether the allowed entry covers the asked toleration.
fn tolerates(allowed: &Toleration, asked: &Toleration) -> bool {
    let operator = |t: &Toleration| t.operator.clone().unwrap_or_else(|| "Equal".into());
    let loose = |allowed: &Option<String>, asked: &Option<String>| {
        allowed.as_deref().is_none_or(str::is_empty) || allowed == asked
    };
    allowed.key == asked.key
        && operator(allowed) == operator(asked)
        && loose(&allowed.value, &asked.value)
        && loose(&allowed.effect, &asked.effect)
}

fn describe(t: &Toleration) -> String {
    format!(
        "{}{}{}:{}",
        t.key.as_deref().unwrap_or("<any key>"),
        if t.operator.as_deref() == Some("Exists") {
            " exists"
        } else {
            "="
        },
        t.value.as_deref().unwrap_or(""),
        t.effect.as_deref().unwrap_or("<any effect>"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(spec: serde_json::Value) -> SandboxSpec {
        serde_json::from_value(spec).unwrap()
    }

    fn policy(json: &str) -> SandboxPolicy {
        SandboxPolicy::parse(json).unwrap()
    }

    #[test]
    fn by_default_nothing_may_be_asked_for_and_a_plain_sandbox_passes() {
        let p = SandboxPolicy::parse("").unwrap();
        assert_eq!(p.check(&sandbox(serde_json::json!({}))), Ok(()));
        let err = p
            .check(&sandbox(
                serde_json::json!({"runtimeClassName": "runc-privileged"}),
            ))
            .unwrap_err();
        assert_eq!(err.reason, NOT_ALLOWED);
        assert_eq!(
            err.to_string(),
            "spec.sandbox.runtimeClassName: RuntimeClass \"runc-privileged\" is not allowed by the operator's \
             sandbox policy (allowed: none)"
        );
        let err = p
            .check(&sandbox(
                serde_json::json!({"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "spec.sandbox.tolerations[0]");
        let err = p
            .check(&sandbox(
                serde_json::json!({"nodeSelector": {"kubernetes.io/hostname": "db-1"}}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "spec.sandbox.nodeSelector[\"kubernetes.io/hostname\"]");
    }

    #[test]
    fn allowed_runtime_classes_pass_and_a_required_one_is_defaulted_or_demanded() {
        let p = policy(r#"{"runtimeClasses": ["gvisor", "kata"], "requireRuntimeClass": true}"#);
        assert_eq!(
            p.check(&sandbox(serde_json::json!({"runtimeClassName": "kata"}))),
            Ok(())
        );
        let err = p.check(&sandbox(serde_json::json!({}))).unwrap_err();
        assert!(
            err.message
                .contains("requires a RuntimeClass (one of: gvisor, kata)"),
            "{err}"
        );

        let p = policy(
            r#"{"runtimeClasses": ["gvisor"], "defaultRuntimeClass": "gvisor", "requireRuntimeClass": true}"#,
        );
        let plain = sandbox(serde_json::json!({}));
        assert_eq!(p.check(&plain), Ok(()));
        assert_eq!(p.runtime_class(&plain).as_deref(), Some("gvisor"));
        assert!(
            p.check(&sandbox(serde_json::json!({"runtimeClassName": "runc"})))
                .is_err()
        );
    }

    #[test]
    fn only_listed_tolerations_and_node_labels_pass() {
        let p = policy(
            r#"{"tolerations": [{"key": "corral.dev/sandbox", "operator": "Exists", "effect": "NoSchedule"},
                                {"key": "pool", "value": "sandboxes"}],
                "nodeSelectors": {"corral.dev/pool": ["sandbox", "sandbox-gpu"], "topology.kubernetes.io/zone": []}}"#,
        );
        let ok = sandbox(serde_json::json!({
            "tolerations": [
                {"key": "corral.dev/sandbox", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "pool", "operator": "Equal", "value": "sandboxes", "effect": "NoExecute"}
            ],
            "nodeSelector": {"corral.dev/pool": "sandbox-gpu", "topology.kubernetes.io/zone": "eu-west-1a"}
        }));
        assert_eq!(p.check(&ok), Ok(()));
        for (bad, field) in [
            (
                serde_json::json!({"tolerations": [{"key": "corral.dev/sandbox", "operator": "Exists", "effect": "NoExecute"}]}),
                "spec.sandbox.tolerations[0]",
            ),
            (
                serde_json::json!({"tolerations": [{"operator": "Exists"}]}),
                "spec.sandbox.tolerations[0]",
            ),
            (
                serde_json::json!({"tolerations": [{"key": "pool", "value": "system"}]}),
                "spec.sandbox.tolerations[0]",
            ),
            (
                serde_json::json!({"nodeSelector": {"corral.dev/pool": "system"}}),
                "spec.sandbox.nodeSelector[\"corral.dev/pool\"]",
            ),
        ] {
            let err = p.check(&sandbox(bad.clone())).unwrap_err();
            assert_eq!(err.field, field, "{bad}");
            assert_eq!(err.reason, NOT_ALLOWED);
        }
    }

    #[test]
    fn the_charts_values_parse() {
        let default = r#"{"defaultRuntimeClass":"","nodeSelectors":{},"requireRuntimeClass":false,"runtimeClasses":[],"tolerations":[]}"#;
        assert_eq!(SandboxPolicy::parse(default), Ok(SandboxPolicy::default()));
        let gvisor = policy(
            r#"{"defaultRuntimeClass":"gvisor","nodeSelectors":{"pool":["sandbox"]},"requireRuntimeClass":true,
                "runtimeClasses":["gvisor"],"tolerations":[{"effect":"NoSchedule","key":"corral.dev/sandbox","operator":"Exists"}]}"#,
        );
        assert_eq!(gvisor.default_runtime_class.as_deref(), Some("gvisor"));
        assert_eq!(gvisor.tolerations[0].key.as_deref(), Some("corral.dev/sandbox"));
    }

    #[test]
    fn an_incoherent_or_misspelt_policy_is_refused_at_start() {
        assert!(SandboxPolicy::parse(r#"{"defaultRuntimeClass": "gvisor"}"#).is_err());
        assert!(SandboxPolicy::parse(r#"{"requireRuntimeClass": true}"#).is_err());
        assert!(SandboxPolicy::parse(r#"{"runtimeClass": ["gvisor"]}"#).is_err());
    }
}
