//! Finding the cluster under test and running kubectl against it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use kube::{Client, Config, config::KubeConfigOptions};

/// The cluster the suite runs against: `KUBECONFIG` when set, else the local cluster of `make cluster-up`.
#[derive(Clone)]
pub struct Cluster {
    /// A client for the cluster.
    pub client: Client,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    /// The namespace Corral is installed in (`CORRAL_NAMESPACE`, default `corral-system`).
    pub corral_namespace: String,
}

impl Cluster {
    /// Connects to the cluster under test.
    pub async fn connect() -> anyhow::Result<Self> {
        let root = repo_root();
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("e2e/.state/kubeconfig"));
        let kubectl = std::env::var_os("KUBECTL").map(PathBuf::from).unwrap_or_else(|| {
            let local = root.join("e2e/.state/bin/kubectl");
            if local.exists() {
                local
            } else {
                PathBuf::from("kubectl")
            }
        });
        let raw = kube::config::Kubeconfig::read_from(&kubeconfig).with_context(|| {
            format!(
                "reading kubeconfig {} (is the cluster up? make cluster-up)",
                kubeconfig.display()
            )
        })?;
        let config = Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default()).await?;
        let client = Client::try_from(config)?;
        let corral_namespace = std::env::var("CORRAL_NAMESPACE").unwrap_or_else(|_| "corral-system".into());
        Ok(Self {
            client,
            kubeconfig,
            kubectl,
            corral_namespace,
        })
    }

    /// Runs kubectl with `args`; returns stdout, or an error carrying stderr.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.kubectl_with_input(args, None)
    }

    /// Runs kubectl with `args` and `stdin`; returns stdout, or an error carrying stderr.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let output = run_with_input(
            Command::new(&self.kubectl)
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args),
            stdin,
        )?;
        if !output.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Cluster {
    /// The logs (every container, from the start) of the Running pods in `namespace` that match the label
    /// `selector`. Pods still starting are skipped: they have logged nothing, and kubectl refuses a selector that
    /// matches one. So is a pod deleted between the listing and the reading (another test's harness, removed with
    /// its namespace's last Agent): its logs went with it.
    pub fn running_pod_logs(&self, namespace: &str, selector: &str) -> anyhow::Result<String> {
        let pods = self.kubectl(&[
            "-n",
            namespace,
            "get",
            "pods",
            "-l",
            selector,
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ])?;
        let mut logs = String::new();
        for pod in pods.lines().filter(|l| !l.trim().is_empty()) {
            match self.kubectl(&["-n", namespace, "logs", pod.trim(), "--all-containers"]) {
                Ok(pod_logs) => logs.push_str(&pod_logs),
                Err(e) => {
                    let still_there = self.kubectl(&[
                        "-n",
                        namespace,
                        "get",
                        pod.trim(),
                        "--ignore-not-found",
                        "-o",
                        "name",
                    ])?;
                    if !still_there.trim().is_empty() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(logs)
    }
}

fn run_with_input(cmd: &mut Command, stdin: Option<&str>) -> anyhow::Result<std::process::Output> {
    use std::{io::Write, process::Stdio};
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kubectl")?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

impl Cluster {
    /// Makes `target` (an `IP:PORT` inside the local cluster, such as a pod's) reachable at a loopback port of
    /// this host, and returns that port. Only for the local cluster of `make cluster-up`.
    pub fn forward(&self, name: &str, target: &str) -> anyhow::Result<u16> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        drop(listener);
        let script = repo_root().join("e2e/cluster/forward.sh");
        let output = Command::new(&script)
            .args(["to-cluster", name, &port.to_string(), target])
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "forward to {target} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(port)
    }
}

impl Cluster {
    /// Makes `127.0.0.1:port` of this host (a server a test started) reachable from pods, and returns the address
    /// they use (`10.201.0.1:port`). Only for the local cluster of `make cluster-up`.
    pub fn forward_from_host(&self, name: &str, port: u16) -> anyhow::Result<String> {
        let script = repo_root().join("e2e/cluster/forward.sh");
        let output = Command::new(&script)
            .args(["from-host", name, &port.to_string()])
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "forward from host port {port} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(format!("{HOST_IP}:{port}"))
    }
}

/// Process ids on this host of the processes named `command` in the containers of the pod `pod_uid`. The local
/// cluster shares the host's PID namespace, so a test can SIGKILL a component the way a crash would.
pub fn processes_of_pod(pod_uid: &str, command: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            !pod_uid.is_empty() && cgroup.contains(pod_uid) && comm.trim() == command
        })
        .collect()
}

/// The address of this host as pods of the local cluster see it.
pub const HOST_IP: &str = "10.201.0.1";

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
