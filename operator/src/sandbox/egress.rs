//! The sandbox's side of the egress proxy: the proxy variables tools read and the pod's proxy identity.

use k8s_openapi::api::core::v1::EnvVar;

use super::{EgressConfig, contract::vars};
use crate::builders::common::env_var;

/// The label (`app.kubernetes.io/component`) of the egress proxy's pods.
pub const EGRESS_COMPONENT: &str = "egress-proxy";

/// The proxy settings of pod `namespace/pod`: the variables tools read (`HTTP_PROXY`, ...) and the daemon's
/// identity for asking the proxy about the session's credential placeholders.
pub fn egress_env(egress: &EgressConfig, namespace: &str, pod: &str) -> Vec<EnvVar> {
    let user = corral_api::egress::proxy_user(namespace, pod);
    let password = corral_api::egress::proxy_password(&egress.key, namespace, pod);
    let proxy = format!("http://{user}:{password}@{}", egress.address);
    let mut out: Vec<EnvVar> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .into_iter()
        .map(|name| env_var(name, &proxy))
        .collect();
    out.push(env_var("NO_PROXY", "localhost,127.0.0.1"));
    out.push(env_var("no_proxy", "localhost,127.0.0.1"));
    out.push(env_var(vars::EGRESS_URL, &format!("http://{}", egress.address)));
    out.push(env_var(vars::EGRESS_USER, &user));
    out.push(env_var(vars::EGRESS_PASSWORD, &password));
    if let Some(ca) = &egress.ca_pem {
        out.push(env_var(vars::EGRESS_CA, ca));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::sandbox::{
        SandboxConfig, build_network_policy, build_sandbox_pod,
        test_support::{egress, env, owner, session_owner},
    };
    use corral_api::labels;

    use super::*;

    #[test]
    fn with_the_egress_proxy_limited_sandboxes_reach_only_the_proxy_under_their_pods_identity() {
        let config = SandboxConfig {
            egress: Some(egress()),
            ..SandboxConfig::default()
        };
        let limited = env(serde_json::json!({
            "config": {"networking": {"type": "limited", "allowedHosts": ["example.com"]}},
            "sandbox": {"env": [{"name": "NO_PROXY", "value": "mirror.internal"}]}
        }));
        let pod = build_sandbox_pod("team", &limited, &session_owner(), "sandbox-s1", &config);
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let values = |name: &str| -> Vec<String> {
            c.env
                .iter()
                .flatten()
                .filter(|e| e.name == name)
                .filter_map(|e| e.value.clone())
                .collect()
        };
        let password = corral_api::egress::proxy_password(b"0123456789abcdef", "team", "sandbox-s1");
        assert_eq!(
            values("HTTPS_PROXY"),
            [format!("http://team.sandbox-s1:{password}@10.96.0.20:3128")]
        );
        assert_eq!(
            values("NO_PROXY").last().map(String::as_str),
            Some("mirror.internal"),
            "the Environment's own setting comes last and wins"
        );
        assert!(
            !format!("{config:?}").contains("0123456789abcdef"),
            "the key is never logged"
        );

        let np = build_network_policy("team", &limited, &owner("Environment"), Some(&egress()), None);
        let rules = np.spec.unwrap().egress.unwrap();
        assert_eq!(rules.len(), 1, "limited: the proxy and nothing else");
        let peer = &rules[0].to.as_ref().unwrap()[0];
        assert_eq!(
            peer.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap()[labels::COMPONENT],
            EGRESS_COMPONENT
        );
        let open = build_network_policy(
            "team",
            &env(serde_json::json!({})),
            &owner("Environment"),
            Some(&egress()),
            None,
        );
        assert_eq!(
            open.spec.unwrap().egress.unwrap().len(),
            2,
            "unrestricted: the proxy and public addresses"
        );
    }
}
