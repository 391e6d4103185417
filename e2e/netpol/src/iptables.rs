//! Applies a [`Ruleset`] to the node's iptables: the whole set at once with `iptables-restore --noflush` (only
//! Corral's chains are rewritten), the main chain kept first in `FORWARD` and `INPUT`, and chains of pods that are
//! gone removed.

use std::{collections::BTreeSet, path::PathBuf, process::Stdio};

use anyhow::{Context, bail};
use tokio::{io::AsyncWriteExt, process::Command};

use crate::model::{MAIN_CHAIN, Ruleset};

/// The built-in chains the main chain is hooked into: pod-to-pod and pod-to-Service traffic passes `FORWARD`
/// (bridged packets too, with `bridge-nf-call-iptables`), pod-to-node traffic (the API server) passes `INPUT`.
const HOOKS: [&str; 2] = ["FORWARD", "INPUT"];

/// Where the iptables commands are.
#[derive(Debug, Clone)]
pub struct Iptables {
    /// The `iptables` binary.
    pub iptables: PathBuf,
    /// The `iptables-restore` binary.
    pub restore: PathBuf,
}

/// The `iptables-restore` input for `rules`.
pub fn restore_input(rules: &Ruleset) -> String {
    let mut out = String::from("*filter\n");
    out += &format!(":{MAIN_CHAIN} - [0:0]\n");
    for chain in rules.chains.keys() {
        out += &format!(":{chain} - [0:0]\n");
    }
    // Replies of admitted connections (and the kubelet's probes' replies) pass without a second look.
    out += &format!("-A {MAIN_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n");
    for rule in rules.dispatch.iter().chain(rules.chains.values().flatten()) {
        out += rule;
        out.push('\n');
    }
    out += "COMMIT\n";
    out
}

impl Iptables {
    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.iptables)
            .arg("-w")
            .args(args)
            .output()
            .await
            .context("running iptables")?;
        if !out.status.success() {
            bail!(
                "iptables {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Makes the node's rules enforce `rules`.
    pub async fn apply(&self, rules: &Ruleset) -> anyhow::Result<()> {
        let mut child = Command::new(&self.restore)
            .args(["--noflush", "-w", "5"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting iptables-restore")?;
        let mut stdin = child.stdin.take().context("iptables-restore's stdin")?;
        stdin.write_all(restore_input(rules).as_bytes()).await?;
        drop(stdin);
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "iptables-restore: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for hook in HOOKS {
            self.keep_first(hook).await?;
        }
        self.remove_stale(rules).await
    }

    /// Puts the jump to the main chain first in `hook`: kube-proxy accepts marked Service traffic in `FORWARD`,
    /// which must not skip the policies.
    async fn keep_first(&self, hook: &str) -> anyhow::Result<()> {
        let jump = format!("-A {hook} -j {MAIN_CHAIN}");
        let listing = self.run(&["-S", hook]).await?;
        let rules: Vec<&str> = listing.lines().filter(|l| l.starts_with("-A ")).collect();
        if rules.first() == Some(&jump.as_str()) && rules.iter().filter(|r| **r == jump).count() == 1 {
            return Ok(());
        }
        while self.run(&["-D", hook, "-j", MAIN_CHAIN]).await.is_ok() {}
        self.run(&["-I", hook, "1", "-j", MAIN_CHAIN]).await?;
        tracing::info!(hook, "hooked the policy chain first");
        Ok(())
    }

    async fn remove_stale(&self, rules: &Ruleset) -> anyhow::Result<()> {
        let listing = self.run(&["-S"]).await?;
        let current: BTreeSet<&str> = rules.chains.keys().map(String::as_str).collect();
        for line in listing.lines() {
            let Some(chain) = line.strip_prefix("-N ") else {
                continue;
            };
            let ours = chain.starts_with("CORRAL-E-") || chain.starts_with("CORRAL-I-");
            if ours && !current.contains(chain) {
                self.run(&["-F", chain]).await?;
                self.run(&["-X", chain]).await?;
                tracing::debug!(chain, "removed the chain of a pod that is gone");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_restore_input_declares_every_chain_before_its_rules() {
        let rules = Ruleset {
            dispatch: vec![format!("-A {MAIN_CHAIN} -s 10.0.0.1/32 -j CORRAL-E-1")],
            chains: BTreeMap::from([(
                "CORRAL-E-1".to_owned(),
                vec!["-A CORRAL-E-1 -j REJECT".to_owned()],
            )]),
        };
        assert_eq!(
            restore_input(&rules),
            "*filter\n:CORRAL-NETPOL - [0:0]\n:CORRAL-E-1 - [0:0]\n\
             -A CORRAL-NETPOL -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n\
             -A CORRAL-NETPOL -s 10.0.0.1/32 -j CORRAL-E-1\n-A CORRAL-E-1 -j REJECT\nCOMMIT\n"
        );
    }
}
