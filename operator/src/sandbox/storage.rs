//! The disk a sandbox may fill: the ephemeral-storage request and limit of its containers and the `sizeLimit` of
//! every emptyDir, so that one session cannot fill its node's disk (the kubelet evicts a pod that goes over).

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};

use corral_api::disk::{DEFAULT_SANDBOX_DISK_LIMIT, sandbox_disk_limit};
pub use corral_api::disk::{EPHEMERAL_STORAGE, quantity_bytes};

/// The `sizeLimit` of the volume the daemon binary is copied into.
pub const DAEMON_BIN_SIZE: &str = "256Mi";

/// The operator's storage defaults for sandboxes (its `--sandbox-ephemeral-storage-*` and `--sandbox-tmp-size-limit`
/// flags). An Environment's `spec.sandbox.resources` may name its own ephemeral-storage request and limit.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageDefaults {
    /// The ephemeral-storage request of a sandbox container whose Environment names none.
    pub request: String,
    /// The ephemeral-storage limit of a sandbox container whose Environment names none; it is also the `sizeLimit`
    /// of the ephemeral workspace and of the installed packages.
    pub limit: String,
    /// The `sizeLimit` of `/tmp` (and of the package installation's scratch space).
    pub tmp: String,
}

impl Default for StorageDefaults {
    fn default() -> Self {
        Self {
            request: "128Mi".into(),
            limit: DEFAULT_SANDBOX_DISK_LIMIT.into(),
            tmp: "1Gi".into(),
        }
    }
}

impl StorageDefaults {
    /// Checks that every value is a quantity and that the request does not exceed the limit.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--sandbox-ephemeral-storage-request", &self.request),
            ("--sandbox-ephemeral-storage-limit", &self.limit),
            ("--sandbox-tmp-size-limit", &self.tmp),
        ] {
            if quantity_bytes(value).is_none() {
                return Err(format!(
                    "{flag}: {value:?} is not a quantity such as 512Mi or 4Gi"
                ));
            }
        }
        if bytes(&self.request) > bytes(&self.limit) {
            return Err(format!(
                "--sandbox-ephemeral-storage-request {} exceeds --sandbox-ephemeral-storage-limit {}",
                self.request, self.limit
            ));
        }
        Ok(())
    }
}

/// `resources` with an ephemeral-storage request and limit: the Environment's own when it names them, the
/// operator's defaults for what it leaves out (a default never exceeds what the Environment set, so the request
/// stays within the limit).
pub fn with_ephemeral_storage(
    mut resources: ResourceRequirements,
    defaults: &StorageDefaults,
) -> ResourceRequirements {
    let limit = sandbox_disk_limit(Some(&resources), &defaults.limit);
    let requests = resources.requests.get_or_insert_with(BTreeMap::new);
    let request = match requests.get(EPHEMERAL_STORAGE) {
        Some(own) => own.0.clone(),
        None => smaller(&defaults.request, &limit),
    };
    requests.insert(EPHEMERAL_STORAGE.to_owned(), Quantity(request));
    (resources.limits.get_or_insert_with(BTreeMap::new))
        .insert(EPHEMERAL_STORAGE.to_owned(), Quantity(limit));
    resources
}

/// The ephemeral-storage limit of `resources` (after [`with_ephemeral_storage`]).
pub fn ephemeral_limit(resources: &ResourceRequirements) -> Option<Quantity> {
    resources.limits.as_ref()?.get(EPHEMERAL_STORAGE).cloned()
}

fn bytes(q: &str) -> f64 {
    quantity_bytes(q).unwrap_or(f64::MAX)
}

fn smaller(a: &str, b: &str) -> String {
    if bytes(a) <= bytes(b) { a } else { b }.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: serde_json::Value) -> ResourceRequirements {
        serde_json::from_value(json).unwrap()
    }

    fn storage(r: &ResourceRequirements) -> (String, String) {
        (
            r.requests.as_ref().unwrap()[EPHEMERAL_STORAGE].0.clone(),
            r.limits.as_ref().unwrap()[EPHEMERAL_STORAGE].0.clone(),
        )
    }

    #[test]
    fn the_defaults_fill_what_the_environment_leaves_out_without_breaking_request_below_limit() {
        let d = StorageDefaults::default();
        let memory_only =
            with_ephemeral_storage(resources(serde_json::json!({"limits": {"memory": "2Gi"}})), &d);
        assert_eq!(storage(&memory_only), ("128Mi".into(), "4Gi".into()));
        assert_eq!(
            memory_only.limits.as_ref().unwrap()["memory"].0,
            "2Gi",
            "the rest is kept"
        );

        let own = resources(
            serde_json::json!({"requests": {"ephemeral-storage": "1Gi"}, "limits": {"ephemeral-storage": "20Gi"}}),
        );
        assert_eq!(
            storage(&with_ephemeral_storage(own, &d)),
            ("1Gi".into(), "20Gi".into())
        );

        let small_limit = resources(serde_json::json!({"limits": {"ephemeral-storage": "64Mi"}}));
        assert_eq!(
            storage(&with_ephemeral_storage(small_limit, &d)),
            ("64Mi".into(), "64Mi".into()),
            "the default request is cut to the Environment's limit"
        );
        let big_request = resources(serde_json::json!({"requests": {"ephemeral-storage": "10Gi"}}));
        assert_eq!(
            storage(&with_ephemeral_storage(big_request, &d)),
            ("10Gi".into(), "10Gi".into()),
            "the default limit is raised to the Environment's request"
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        assert_eq!(StorageDefaults::default().validate(), Ok(()));
        let bad = StorageDefaults {
            limit: "4 gigs".into(),
            ..StorageDefaults::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("--sandbox-ephemeral-storage-limit")
        );
        let inverted = StorageDefaults {
            request: "8Gi".into(),
            ..StorageDefaults::default()
        };
        assert!(inverted.validate().is_err());
    }
}
