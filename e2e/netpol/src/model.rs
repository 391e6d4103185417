//! What the cluster's NetworkPolicies mean for each pod of the node, as iptables rules (pure: a snapshot of pods,
//! namespaces and policies in, chains out).
//!
//! Every pod selected by a policy of some direction is isolated in that direction and gets a chain for it
//! (`CORRAL-E-…` for egress, `CORRAL-I-…` for ingress): one `RETURN` rule per allowed peer and port, then a `REJECT`.
//! The dispatch rules send a packet from a pod's address to its egress chain and a packet to a pod's address to its
//! ingress chain, so a packet between two pods passes both checks. Traffic from the node itself (kubelet probes,
//! port forwards) is not filtered, as with most CNI plugins.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use k8s_openapi::{
    api::{
        core::v1::Pod,
        networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort},
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::core::{Selector, SelectorExt};
use sha2::{Digest, Sha256};

use crate::cidr::Cidr;

/// A container port a pod names, which policies may refer to by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// Its number.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// The facts about one running pod that policies depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// The pod's IPv4 address.
    pub ip: Ipv4Addr,
    /// The named container ports.
    pub ports: Vec<NamedPort>,
}

impl PodView {
    /// The view of `pod`, or `None` for a pod policies do not apply to: not yet addressed, finished, or on the
    /// host's network.
    pub fn of(pod: &Pod) -> Option<Self> {
        let spec = pod.spec.as_ref()?;
        let status = pod.status.as_ref()?;
        if spec.host_network == Some(true) || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
        {
            return None;
        }
        let ip = status.pod_ip.as_deref()?.parse().ok()?;
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.clone()?,
                    port: u16::try_from(p.container_port).ok()?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
            })
            .collect();
        Some(Self {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ip,
            ports,
        })
    }
}

/// Everything the rules are computed from.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// The pods policies may apply to.
    pub pods: Vec<PodView>,
    /// Namespace names and their labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Every NetworkPolicy of the cluster.
    pub policies: Vec<NetworkPolicy>,
}

/// The computed iptables rules: dispatch rules for the main chain and the per-pod chains (name → rules, each rule
/// in `iptables-restore` form starting with `-A <chain>`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Rules of the main chain after its connection-tracking shortcut.
    pub dispatch: Vec<String>,
    /// The per-pod chains.
    pub chains: BTreeMap<String, Vec<String>>,
}

/// The chain every filtered packet goes through first.
pub const MAIN_CHAIN: &str = "CORRAL-NETPOL";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn api_name(self) -> &'static str {
        match self {
            Self::Ingress => "Ingress",
            Self::Egress => "Egress",
        }
    }
}

/// A protocol and an optional port range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PortMatch {
    protocol: String,
    range: Option<(u16, u16)>,
}

impl PortMatch {
    fn render(&self) -> String {
        let proto = self.protocol.to_ascii_lowercase();
        match self.range {
            None => format!(" -p {proto}"),
            Some((a, b)) if a == b => format!(" -p {proto} -m {proto} --dport {a}"),
            Some((a, b)) => format!(" -p {proto} -m {proto} --dport {a}:{b}"),
        }
    }
}

/// The chain name of `pod` for `direction`: short enough for iptables (28 characters) and stable across syncs.
fn chain_name(pod: &PodView, direction: Direction) -> String {
    let digest = Sha256::digest(format!("{}/{}", pod.namespace, pod.name));
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let letter = match direction {
        Direction::Ingress => 'I',
        Direction::Egress => 'E',
    };
    format!("CORRAL-{letter}-{hex}")
}

fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    match Selector::try_from(selector.clone()) {
        Ok(s) => s.matches(labels),
        Err(e) => {
            tracing::warn!(error = %e, "a label selector cannot be parsed; it selects nothing");
            false
        }
    }
}

fn policy_types(policy: &NetworkPolicy) -> Vec<String> {
    let Some(spec) = &policy.spec else {
        return vec![];
    };
    match &spec.policy_types {
        Some(types) => types.clone(),
        None => {
            let mut types = vec!["Ingress".to_owned()];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push("Egress".to_owned());
            }
            types
        }
    }
}

/// A rule's peers (`from` or `to`) and ports.
type RuleParts<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// One side of an allowed connection: an address block, and the pod it is when it is one.
struct Peer<'a> {
    block: Option<Cidr>,
    pod: Option<&'a PodView>,
}

fn peers<'a>(snapshot: &'a Snapshot, policy_ns: &str, peer: &NetworkPolicyPeer) -> Vec<Peer<'a>> {
    if let Some(block) = &peer.ip_block {
        let Ok(cidr) = block.cidr.parse::<Cidr>() else {
            tracing::warn!(cidr = %block.cidr, "ipBlock is not IPv4; skipped");
            return vec![];
        };
        let except: Vec<Cidr> = block
            .except
            .iter()
            .flatten()
            .filter_map(|e| e.parse().ok())
            .collect();
        return cidr
            .subtract(&except)
            .into_iter()
            .map(|block| Peer {
                block: Some(block),
                pod: None,
            })
            .collect();
    }
    let namespaces: BTreeSet<&str> = match &peer.namespace_selector {
        Some(sel) => snapshot
            .namespaces
            .iter()
            .filter(|(_, labels)| selects(Some(sel), labels))
            .map(|(name, _)| name.as_str())
            .collect(),
        None => BTreeSet::from([policy_ns]),
    };
    snapshot
        .pods
        .iter()
        .filter(|p| {
            namespaces.contains(p.namespace.as_str()) && selects(peer.pod_selector.as_ref(), &p.labels)
        })
        .map(|p| Peer {
            block: Some(Cidr::host(p.ip)),
            pod: Some(p),
        })
        .collect()
}

/// The port match of `port` on the pod that receives the traffic (`receiver`, when it is a pod); `None` when the
/// port is named and the receiver has no such port.
fn port_match(port: &NetworkPolicyPort, receiver: Option<&PodView>) -> Option<PortMatch> {
    let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
    let range = match &port.port {
        None => None,
        Some(IntOrString::Int(n)) => {
            let start = u16::try_from(*n).ok()?;
            let end = port.end_port.and_then(|e| u16::try_from(e).ok()).unwrap_or(start);
            Some((start, end))
        }
        Some(IntOrString::String(name)) => {
            let named = receiver?
                .ports
                .iter()
                .find(|p| &p.name == name && p.protocol == protocol)?;
            Some((named.port, named.port))
        }
    };
    Some(PortMatch { protocol, range })
}

/// The `RETURN` rules of `pod`'s chain for `direction`, from every policy selecting it.
fn allow_rules(snapshot: &Snapshot, pod: &PodView, direction: Direction, chain: &str) -> Vec<String> {
    let mut rules = BTreeSet::new();
    let flag = match direction {
        Direction::Ingress => "-s",
        Direction::Egress => "-d",
    };
    for policy in &snapshot.policies {
        let Some(spec) = &policy.spec else { continue };
        let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
        if ns != pod.namespace
            || !selects(spec.pod_selector.as_ref(), &pod.labels)
            || !policy_types(policy).iter().any(|t| t == direction.api_name())
        {
            continue;
        }
        let sections: Vec<RuleParts> = match direction {
            Direction::Ingress => spec
                .ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                .collect(),
            Direction::Egress => spec
                .egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                .collect(),
        };
        for (rule_peers, rule_ports) in sections {
            let any_peer = vec![Peer {
                block: None,
                pod: None,
            }];
            let resolved: Vec<Peer> = match rule_peers {
                Some(list) if !list.is_empty() => list.iter().flat_map(|p| peers(snapshot, ns, p)).collect(),
                _ => any_peer,
            };
            for peer in &resolved {
                let receiver = match direction {
                    Direction::Ingress => Some(pod),
                    Direction::Egress => peer.pod,
                };
                let address = peer.block.map(|b| format!(" {flag} {b}")).unwrap_or_default();
                match rule_ports {
                    Some(ports) if !ports.is_empty() => {
                        for port in ports {
                            if let Some(m) = port_match(port, receiver) {
                                rules.insert(format!("-A {chain}{address}{} -j RETURN", m.render()));
                            }
                        }
                    }
                    _ => {
                        rules.insert(format!("-A {chain}{address} -j RETURN"));
                    }
                }
            }
        }
    }
    let mut rules: Vec<String> = rules.into_iter().collect();
    rules.push(format!(
        "-A {chain} -j REJECT --reject-with icmp-admin-prohibited"
    ));
    rules
}

fn isolated(snapshot: &Snapshot, pod: &PodView, direction: Direction) -> bool {
    snapshot.policies.iter().any(|policy| {
        policy.metadata.namespace.as_deref() == Some(pod.namespace.as_str())
            && policy
                .spec
                .as_ref()
                .is_some_and(|s| selects(s.pod_selector.as_ref(), &pod.labels))
            && policy_types(policy).iter().any(|t| t == direction.api_name())
    })
}

/// The rules enforcing `snapshot`'s policies.
pub fn ruleset(snapshot: &Snapshot) -> Ruleset {
    let mut out = Ruleset::default();
    let mut pods: Vec<&PodView> = snapshot.pods.iter().collect();
    pods.sort_by_key(|p| (p.ip, p.namespace.clone(), p.name.clone()));
    for pod in pods {
        for direction in [Direction::Egress, Direction::Ingress] {
            if !isolated(snapshot, pod, direction) {
                continue;
            }
            let chain = chain_name(pod, direction);
            let flag = match direction {
                Direction::Ingress => "-d",
                Direction::Egress => "-s",
            };
            out.dispatch
                .push(format!("-A {MAIN_CHAIN} {flag} {}/32 -j {chain}", pod.ip));
            let rules = allow_rules(snapshot, pod, direction, &chain);
            out.chains.insert(chain, rules);
        }
    }
    out
}

#[cfg(test)]
mod tests;
