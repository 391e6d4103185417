//! One temporary, labelled namespace per test. On failure its objects, events and pod logs are printed, so a red
//! CI run says why; `kubectl delete ns -l corral.dev/e2e` removes leftovers.

use std::{
    panic::AssertUnwindSafe,
    time::{SystemTime, UNIX_EPOCH},
};

use futures::FutureExt as _;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Pod},
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};

use crate::Cluster;

/// Label on every namespace the suite creates.
pub const E2E_LABEL: &str = "corral.dev/e2e";

/// A namespace that lives for one test.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    cluster: Cluster,
}

impl TestNamespace {
    /// Creates `e2e-<test>-<suffix>`.
    pub async fn create(cluster: &Cluster, test: &str) -> anyhow::Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
        let name = format!("e2e-{test}-{:x}", nanos % 0xfffff);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { E2E_LABEL: test } }
        }))?;
        Api::<Namespace>::all(cluster.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(Self {
            name,
            cluster: cluster.clone(),
        })
    }

    /// Applies YAML documents into the namespace with kubectl (server-side); returns kubectl's output or error.
    pub fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        self.cluster.kubectl_with_input(
            &["-n", &self.name, "apply", "--server-side", "-f", "-"],
            Some(yaml),
        )
    }

    /// The cluster the namespace lives in.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// A typed Api in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.cluster.client.clone(), &self.name)
    }

    /// Prints everything in the namespace: call on failure.
    pub fn dump(&self) {
        let ns = self.name.as_str();
        eprintln!("===== e2e namespace {ns} =====");
        let harness = self.harness_selector();
        let sections: [(&str, Vec<&str>); 5] = [
            (
                "objects",
                vec!["-n", ns, "get", "corral,all,controllerrevisions", "-o", "yaml"],
            ),
            (
                "events",
                vec!["-n", ns, "get", "events", "--sort-by=.lastTimestamp"],
            ),
            (
                "pod logs",
                vec![
                    "-n",
                    ns,
                    "logs",
                    "--all-containers",
                    "--prefix",
                    "-l",
                    "app.kubernetes.io/name=corral",
                ],
            ),
            (
                "harness logs",
                vec![
                    "-n",
                    &self.cluster.corral_namespace,
                    "logs",
                    "--all-containers",
                    "--prefix",
                    "--tail=200",
                    "-l",
                    &harness,
                ],
            ),
            (
                "operator logs",
                vec![
                    "-n",
                    &self.cluster.corral_namespace,
                    "logs",
                    "--tail=200",
                    "-l",
                    "app.kubernetes.io/component=operator",
                ],
            ),
        ];
        for (title, args) in sections {
            match self.cluster.kubectl(&args) {
                Ok(out) => eprintln!("--- {title} ---\n{out}"),
                Err(e) => eprintln!("--- {title}: {e:#}"),
            }
        }
    }

    /// The name of the namespace's harness Deployment, Secret and ServiceAccount in Corral's namespace (the
    /// suite's namespace names are short enough never to be hash-shortened by the operator).
    pub fn harness_name(&self) -> String {
        format!("corral-harness-{}", self.name)
    }

    /// The label selector of the namespace's harness pods, which run in Corral's namespace
    /// ([`Self::harness_pods`]).
    pub fn harness_selector(&self) -> String {
        format!(
            "app.kubernetes.io/component=harness,corral.dev/tenant-namespace={}",
            self.name
        )
    }

    /// Pods of Corral's namespace, where the namespace's harness pods run (select them with
    /// [`Self::harness_selector`]).
    pub fn harness_pods(&self) -> Api<Pod> {
        Api::namespaced(self.cluster.client.clone(), &self.cluster.corral_namespace)
    }

    /// The Prometheus text of each running harness pod of the namespace's `/metrics`, read through a forward to its
    /// metrics port (a turn may run on any replica: sum a counter over them).
    pub async fn harness_metrics(&self) -> anyhow::Result<Vec<String>> {
        let pods = self
            .harness_pods()
            .list(&kube::api::ListParams::default().labels(&self.harness_selector()))
            .await?
            .items;
        let targets: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.clone()?;
                let port = p
                    .spec
                    .as_ref()?
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|port| port.name.as_deref() == Some("metrics"))?
                    .container_port;
                Some(format!("{ip}:{port}"))
            })
            .collect();
        anyhow::ensure!(!targets.is_empty(), "no running harness pod with a metrics port");
        let mut texts = Vec::new();
        for target in targets {
            let name = crate::gateway::Forward::unique_name("e2e-harness-met");
            let port = self.cluster.forward(&name, &target)?;
            let _forward = crate::gateway::Forward::owned(name);
            texts.push(
                reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                    .await?
                    .error_for_status()?
                    .text()
                    .await?,
            );
        }
        Ok(texts)
    }

    /// Waits until the namespace's harness Deployment (run by the operator in Corral's namespace once the
    /// namespace has an agent) has an available replica.
    pub async fn harness_available(&self, timeout: std::time::Duration) -> anyhow::Result<()> {
        let deployments: Api<Deployment> =
            Api::namespaced(self.cluster.client.clone(), &self.cluster.corral_namespace);
        crate::wait::object(
            &deployments,
            &self.harness_name(),
            timeout,
            "harness Deployment available",
            |d: &Deployment| d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) >= 1,
        )
        .await
        .map(drop)
    }

    /// Runs `test` in the namespace; dumps it if the test fails (an error or a panic), deletes it either way (unless
    /// `E2E_KEEP=1`).
    pub async fn run<F, Fut>(cluster: &Cluster, name: &str, test: F) -> anyhow::Result<()>
    where
        F: FnOnce(TestNamespace) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let ns = Self::create(cluster, name).await?;
        let ns_name = ns.name.clone();
        let probe = Self {
            name: ns_name.clone(),
            cluster: cluster.clone(),
        };
        // A failed assertion panics: caught here so that it too dumps the namespace and removes it.
        let outcome = AssertUnwindSafe(test(ns)).catch_unwind().await;
        if !matches!(outcome, Ok(Ok(()))) {
            probe.dump();
        }
        if std::env::var("E2E_KEEP").as_deref() != Ok("1") {
            let _ = Api::<Namespace>::all(cluster.client.clone())
                .delete(&ns_name, &DeleteParams::background())
                .await;
        }
        outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}
