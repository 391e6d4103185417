use super::*;
use serde_json::json;

fn pod(ns: &str, name: &str, ip: &str, labels: &[(&str, &str)]) -> PodView {
    PodView {
        namespace: ns.into(),
        name: name.into(),
        labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        ip: ip.parse().unwrap(),
        ports: vec![],
    }
}

fn policy(ns: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns}, "spec": spec})).unwrap()
}

fn snapshot(pods: Vec<PodView>, policies: Vec<NetworkPolicy>) -> Snapshot {
    let namespaces = pods
        .iter()
        .map(|p| {
            (
                p.namespace.clone(),
                BTreeMap::from([("kubernetes.io/metadata.name".into(), p.namespace.clone())]),
            )
        })
        .collect();
    Snapshot {
        pods,
        namespaces,
        policies,
    }
}

fn chain_of<'a>(rules: &'a Ruleset, pod: &PodView, direction: Direction) -> &'a [String] {
    rules
        .chains
        .get(&chain_name(pod, direction))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[test]
fn pods_no_policy_selects_are_not_filtered() {
    let a = pod("t", "a", "10.202.0.5", &[("app", "a")]);
    let p = policy(
        "t",
        json!({"podSelector": {"matchLabels": {"app": "other"}}, "ingress": []}),
    );
    let rules = ruleset(&snapshot(vec![a], vec![p]));
    assert_eq!(rules, Ruleset::default());
}

#[test]
fn the_sandbox_policy_admits_only_the_harness_and_keeps_internal_ranges_closed() {
    let sandbox = pod(
        "t",
        "sbx",
        "10.202.0.7",
        &[("app.kubernetes.io/component", "sandbox")],
    );
    let harness = pod(
        "t",
        "harness",
        "10.202.0.8",
        &[("app.kubernetes.io/component", "harness")],
    );
    let other_ns = pod(
        "u",
        "harness",
        "10.202.0.9",
        &[("app.kubernetes.io/component", "harness")],
    );
    let p = policy(
        "t",
        json!({
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "sandbox"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "harness"}}}],
                         "ports": [{"port": 7070, "protocol": "TCP"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.0.0/16"]}}]}],
        }),
    );
    let rules = ruleset(&snapshot(
        vec![sandbox.clone(), harness.clone(), other_ns],
        vec![p],
    ));

    let ingress = chain_of(&rules, &sandbox, Direction::Ingress);
    let name = chain_name(&sandbox, Direction::Ingress);
    assert_eq!(
        ingress,
        [
            format!("-A {name} -s 10.202.0.8/32 -p tcp -m tcp --dport 7070 -j RETURN"),
            format!("-A {name} -j REJECT --reject-with icmp-admin-prohibited"),
        ],
        "only the harness of the sandbox's own namespace, only on the daemon port"
    );
    let egress = chain_of(&rules, &sandbox, Direction::Egress).join("\n");
    assert!(
        egress.contains(" -d 0.0.0.0/5 -j RETURN") && egress.contains(" -d 11.0.0.0/8 -j RETURN"),
        "{egress}"
    );
    assert!(
        !egress.contains(" -d 10."),
        "no block inside 10/8 is allowed: {egress}"
    );
    assert!(egress.ends_with("-j REJECT --reject-with icmp-admin-prohibited"));
    assert!(
        chain_of(&rules, &harness, Direction::Ingress).is_empty(),
        "the harness is not isolated"
    );
    assert_eq!(
        rules.dispatch,
        [
            format!(
                "-A {MAIN_CHAIN} -s 10.202.0.7/32 -j {}",
                chain_name(&sandbox, Direction::Egress)
            ),
            format!("-A {MAIN_CHAIN} -d 10.202.0.7/32 -j {name}"),
        ]
    );
}

#[test]
fn namespace_selectors_named_ports_and_default_policy_types() {
    let mut redis = pod("corral", "redis-0", "10.202.0.10", &[("app", "redis")]);
    redis.ports.push(NamedPort {
        name: "redis".into(),
        port: 6379,
        protocol: "TCP".into(),
    });
    let harness = pod("tenant", "harness", "10.202.0.11", &[("app", "harness")]);
    let sandbox = pod("tenant", "sbx", "10.202.0.12", &[("app", "sandbox")]);
    // No policyTypes and no egress section: an ingress policy only.
    let p = policy(
        "corral",
        json!({
            "podSelector": {"matchLabels": {"app": "redis"}},
            "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "harness"}}}],
                         "ports": [{"port": "redis"}]}],
        }),
    );
    let rules = ruleset(&snapshot(vec![redis.clone(), harness, sandbox], vec![p]));
    let name = chain_name(&redis, Direction::Ingress);
    assert_eq!(
        chain_of(&rules, &redis, Direction::Ingress)[0],
        format!("-A {name} -s 10.202.0.11/32 -p tcp -m tcp --dport 6379 -j RETURN")
    );
    assert_eq!(
        chain_of(&rules, &redis, Direction::Ingress).len(),
        2,
        "the sandbox is not admitted"
    );
    assert!(
        chain_of(&rules, &redis, Direction::Egress).is_empty(),
        "egress is not isolated"
    );
}

#[test]
fn a_policy_without_rules_denies_everything_in_its_directions() {
    let a = pod("t", "a", "10.202.0.5", &[]);
    let p = policy("t", json!({"podSelector": {}, "policyTypes": ["Egress"]}));
    let rules = ruleset(&snapshot(vec![a.clone()], vec![p]));
    let name = chain_name(&a, Direction::Egress);
    assert_eq!(
        chain_of(&rules, &a, Direction::Egress),
        [format!("-A {name} -j REJECT --reject-with icmp-admin-prohibited")]
    );
    assert!(chain_of(&rules, &a, Direction::Ingress).is_empty());
}

#[test]
fn a_rule_without_peers_or_ports_allows_all_and_port_ranges_render() {
    let a = pod("t", "a", "10.202.0.5", &[]);
    let p = policy(
        "t",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
               "ingress": [{}],
               "egress": [{"ports": [{"port": 8000, "endPort": 8100, "protocol": "UDP"}]}]}),
    );
    let rules = ruleset(&snapshot(vec![a.clone()], vec![p]));
    let ingress = chain_name(&a, Direction::Ingress);
    let egress = chain_name(&a, Direction::Egress);
    assert_eq!(
        chain_of(&rules, &a, Direction::Ingress)[0],
        format!("-A {ingress} -j RETURN")
    );
    assert_eq!(
        chain_of(&rules, &a, Direction::Egress)[0],
        format!("-A {egress} -p udp -m udp --dport 8000:8100 -j RETURN")
    );
}

#[test]
fn finished_and_host_network_pods_are_ignored() {
    let base = json!({"metadata": {"name": "a", "namespace": "t"},
                      "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
                      "status": {"podIP": "10.202.0.5", "phase": "Running"}});
    let running: Pod = serde_json::from_value(base.clone()).unwrap();
    let view = PodView::of(&running).unwrap();
    assert_eq!(
        view.ports,
        [NamedPort {
            name: "http".into(),
            port: 80,
            protocol: "TCP".into()
        }]
    );
    let mut done = base.clone();
    done["status"]["phase"] = json!("Succeeded");
    assert!(PodView::of(&serde_json::from_value(done).unwrap()).is_none());
    let mut host = base.clone();
    host["spec"]["hostNetwork"] = json!(true);
    assert!(PodView::of(&serde_json::from_value(host).unwrap()).is_none());
    let mut pending = base;
    pending["status"] = json!({"phase": "Pending"});
    assert!(PodView::of(&serde_json::from_value(pending).unwrap()).is_none());
}
