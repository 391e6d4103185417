//! The NetworkPolicy every sandbox pod of an Environment falls under: ingress only from the harness on the daemon
//! port; egress per the Environment's networking, always through the egress proxy when there is one.

use std::collections::BTreeMap;

use corral_api::{Environment, environment::NetworkingType, labels};
use k8s_openapi::{
    api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
        NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, OwnerReference},
        util::intstr::IntOrString,
    },
};

use super::{
    EgressConfig,
    contract::DAEMON_PORT,
    egress::EGRESS_COMPONENT,
    naming::{COMPONENT, meta},
};

/// Private and link-local ranges a sandbox never reaches, even with `unrestricted` networking: the cluster's pods
/// and Services, the node, and cloud metadata endpoints live there.
pub const INTERNAL_RANGES: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
];

/// The name of an Environment's sandbox NetworkPolicy.
pub fn network_policy_name(environment: &str) -> String {
    format!("sandbox-{environment}")
}

fn labels_selector(pairs: impl IntoIterator<Item = (String, String)>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(pairs.into_iter().collect()),
        ..LabelSelector::default()
    })
}

fn tcp_port(port: i32) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }])
}

/// The Environment's NetworkPolicy for its sandboxes: ingress only from the harness on the daemon port (the
/// namespace's own harness in `harness_namespace`, the system namespace, when the operator runs the harnesses;
/// a harness pod of the namespace itself otherwise); egress
/// `unrestricted` (the public internet but no internal range) or `limited` (nothing directly), plus the egress
/// proxy in both modes when there is one (`limited`: for its host list; `unrestricted`: for credentials).
pub fn build_network_policy(
    namespace: &str,
    env: &Environment,
    owner: &OwnerReference,
    proxy: Option<&EgressConfig>,
    harness_namespace: Option<&str>,
) -> NetworkPolicy {
    let env_name = env.metadata.name.clone().unwrap_or_default();
    let harness = match harness_namespace {
        // The API server sets `kubernetes.io/metadata.name`; no tenant can give it to its own namespace.
        Some(system) => NetworkPolicyPeer {
            namespace_selector: labels_selector([(
                "kubernetes.io/metadata.name".to_owned(),
                system.to_owned(),
            )]),
            pod_selector: labels_selector(crate::builders::harness::selector_labels(namespace)),
            ..NetworkPolicyPeer::default()
        },
        None => NetworkPolicyPeer {
            pod_selector: labels_selector([(labels::COMPONENT.to_owned(), "harness".to_owned())]),
            ..NetworkPolicyPeer::default()
        },
    };
    let direct = match env.spec.config.networking.kind {
        NetworkingType::Unrestricted => Some(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "0.0.0.0/0".into(),
                    except: Some(INTERNAL_RANGES.iter().map(|s| (*s).to_owned()).collect()),
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ..NetworkPolicyEgressRule::default()
        }),
        NetworkingType::Limited => None,
    };
    let through_proxy = proxy.map(|proxy| NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: labels_selector([(
                "kubernetes.io/metadata.name".to_owned(),
                proxy.namespace.clone(),
            )]),
            pod_selector: labels_selector([(labels::COMPONENT.to_owned(), EGRESS_COMPONENT.to_owned())]),
            ..NetworkPolicyPeer::default()
        }]),
        ports: tcp_port(i32::from(corral_api::egress::PROXY_PORT)),
    });
    let l = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "sandbox-network-policy".to_owned()),
        (labels::ENVIRONMENT.to_owned(), env_name.clone()),
    ]);
    NetworkPolicy {
        metadata: meta(network_policy_name(&env_name), namespace, l, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: labels_selector([
                (labels::COMPONENT.to_owned(), COMPONENT.to_owned()),
                (labels::ENVIRONMENT.to_owned(), env_name.clone()),
            ]),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![harness]),
                ports: tcp_port(DAEMON_PORT),
            }]),
            egress: Some(through_proxy.into_iter().chain(direct).collect()),
        }),
    }
}

/// Whether `policy` selects a pod with these labels (its `matchLabels` are all among them).
pub fn selects(policy: &NetworkPolicy, pod_labels: &BTreeMap<String, String>) -> bool {
    let wanted = policy
        .spec
        .as_ref()
        .and_then(|s| s.pod_selector.as_ref())
        .and_then(|s| s.match_labels.as_ref());
    wanted.is_some_and(|w| w.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::test_support::{env, owner};

    #[test]
    fn network_policy_admits_only_the_harness_and_keeps_internal_ranges_closed() {
        let np = build_network_policy(
            "team",
            &env(serde_json::json!({})),
            &owner("Environment"),
            None,
            None,
        );
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        let ingress = spec.ingress.unwrap();
        assert_eq!(ingress.len(), 1);
        let from = ingress[0].from.as_ref().unwrap();
        let harness = from[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(
            harness.get(labels::COMPONENT).map(String::as_str),
            Some("harness")
        );
        let egress = spec.egress.unwrap();
        let block = egress[0].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap();
        assert_eq!(block.cidr, "0.0.0.0/0");
        for range in ["10.0.0.0/8", "169.254.0.0/16", "192.168.0.0/16"] {
            assert!(
                block.except.as_ref().unwrap().iter().any(|r| r == range),
                "{range}"
            );
        }
        let limited = build_network_policy(
            "team",
            &env(serde_json::json!({ "config": { "networking": { "type": "limited" } } })),
            &owner("Environment"),
            None,
            None,
        );
        assert_eq!(
            limited.spec.unwrap().egress,
            Some(vec![]),
            "limited egress without a proxy reaches nothing"
        );
    }

    #[test]
    fn the_harness_is_admitted_from_the_system_namespace_with_its_tenants_labels() {
        let np = build_network_policy(
            "team",
            &env(serde_json::json!({})),
            &owner("Environment"),
            None,
            Some("corral-system"),
        );
        let from = &np.spec.unwrap().ingress.unwrap()[0].from.clone().unwrap()[0];
        let ns = from
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(ns["kubernetes.io/metadata.name"], "corral-system");
        let pods = from.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(pods[labels::COMPONENT], "harness");
        assert_eq!(pods[crate::builders::harness::TENANT_LABEL], "team");
    }
}
