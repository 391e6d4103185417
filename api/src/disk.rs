//! The disk of a sandbox: one budget, the ephemeral-storage limit of its container, is also the `sizeLimit` of its
//! `/mnt/session` volume and its ephemeral workspace. The operator sizes the pod from it and the gateway refuses
//! file resources that would not fit in it, both through [`sandbox_disk_limit`], so the two cannot disagree.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};

/// The resource name of local disk.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// The sandbox disk budget when neither the Environment nor the installation names one (the chart's
/// `sandbox.storage.limit`, the operator's and the gateway's `--sandbox-ephemeral-storage-limit`).
pub const DEFAULT_SANDBOX_DISK_LIMIT: &str = "4Gi";

/// The ephemeral-storage limit of a sandbox whose Environment asks for `resources`, with `default_limit` the
/// installation's: the Environment's own limit; else the larger of its request and the default (a limit never
/// below the request); else the default.
pub fn sandbox_disk_limit(resources: Option<&ResourceRequirements>, default_limit: &str) -> String {
    let named = |list: Option<&BTreeMap<String, Quantity>>| list?.get(EPHEMERAL_STORAGE).map(|q| q.0.clone());
    let limit = named(resources.and_then(|r| r.limits.as_ref()));
    let request = named(resources.and_then(|r| r.requests.as_ref()));
    match (limit, request) {
        (Some(limit), _) => limit,
        (None, Some(request)) if bytes(&request) > bytes(default_limit) => request,
        (None, _) => default_limit.to_owned(),
    }
}

fn bytes(q: &str) -> f64 {
    quantity_bytes(q).unwrap_or(f64::MAX)
}

/// The value of a Kubernetes quantity (`512Mi`, `4G`, `1.5Gi`, `1e9`) in bytes; `None` when it is not one.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    (number >= 0.0).then_some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: serde_json::Value) -> ResourceRequirements {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(quantity_bytes("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(quantity_bytes("4Gi"), Some(4.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity_bytes("1G"), Some(1e9));
        assert_eq!(quantity_bytes("2e3"), Some(2000.0));
        assert!(quantity_bytes("1.5Gi") > quantity_bytes("1Gi"));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_bytes("4 GB"), None);
    }

    #[test]
    fn the_environment_s_own_limit_wins_and_a_request_raises_the_default() {
        let d = DEFAULT_SANDBOX_DISK_LIMIT;
        assert_eq!(sandbox_disk_limit(None, d), "4Gi");
        let memory_only = resources(serde_json::json!({"limits": {"memory": "2Gi"}}));
        assert_eq!(sandbox_disk_limit(Some(&memory_only), d), "4Gi");
        let small = resources(serde_json::json!({"limits": {"ephemeral-storage": "64Mi"}}));
        assert_eq!(sandbox_disk_limit(Some(&small), d), "64Mi");
        let big_request = resources(serde_json::json!({"requests": {"ephemeral-storage": "10Gi"}}));
        assert_eq!(sandbox_disk_limit(Some(&big_request), d), "10Gi");
        let small_request = resources(serde_json::json!({"requests": {"ephemeral-storage": "1Gi"}}));
        assert_eq!(sandbox_disk_limit(Some(&small_request), d), "4Gi");
    }
}
