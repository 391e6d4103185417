//! The wall around the session log's Redis (issue 14, finding 1) and the Files API's object store, tried from a
//! tenant's position:
//!
//! - the network: a pod a tenant creates in its own namespace, with every label a harness has (and the label that
//!   used to open Redis), cannot open a TCP connection to Redis; the same probe from a pod in Corral's namespace
//!   with a harness's labels connects, so the test can fail;
//! - the credentials: no command works without a password, even from that permitted position; the Redis user of
//!   tenant A's harness (read from its Secret in Corral's namespace) reads A's session log and is refused B's; no
//!   Secret of a tenant namespace holds a Redis password;
//! - the object store: a pod a tenant creates with every label of a gateway pod cannot open a TCP connection to its
//!   S3 port; the gateway itself can.
#![cfg(feature = "e2e")]

use std::{collections::BTreeMap, time::Duration};

use corral_api::events::EventBody;
use corral_e2e::{Cluster, TestNamespace, sandbox::IDLE_AGENT, wait};
use corral_session::{Config, Order, Store, acl};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};

const TIMEOUT: Duration = Duration::from_secs(180);

/// The installed Redis as this host reaches it, with Corral's system user (forwarded by hack/e2e.sh).
fn system_url() -> anyhow::Result<String> {
    corral_e2e::installed_redis_url()
}

/// A pod of the Redis image (it has `redis-cli` and bash) that sleeps, so probes can be run in it.
fn probe_pod(name: &str, labels: &BTreeMap<String, String>) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 999, "seccompProfile": { "type": "RuntimeDefault" }
            },
            "containers": [{
                "name": "probe",
                "image": "corral/redis:dev",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
            }]
        }
    }))?)
}

/// Creates `pod` in `namespace` and waits until it runs.
async fn run_pod(cluster: &Cluster, namespace: &str, pod: &Pod) -> anyhow::Result<Api<Pod>> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    pods.create(&PostParams::default(), pod).await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    wait::object(&pods, &name, TIMEOUT, "probe pod Running", |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await?;
    Ok(pods)
}

/// Whether a TCP connection to `ip:port` from `pod` opens: `open` or `closed`.
fn tcp(cluster: &Cluster, namespace: &str, pod: &str, ip: &str, port: u16) -> anyhow::Result<String> {
    let tcp =
        format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null && echo open || echo closed");
    let tcp = cluster.kubectl(&["-n", namespace, "exec", pod, "--", "bash", "-c", &tcp])?;
    Ok(tcp.trim().to_owned())
}

/// What a TCP connection and an unauthenticated `PING` to `ip:6379` from `pod` give: `open`/`closed`, then
/// redis-cli's answer.
fn probe(cluster: &Cluster, namespace: &str, pod: &str, ip: &str) -> anyhow::Result<(String, String)> {
    let tcp = tcp(cluster, namespace, pod, ip, 6379)?;
    let ping = format!("timeout 5 redis-cli -h {ip} -p 6379 PING 2>&1 || true");
    let ping = cluster.kubectl(&["-n", namespace, "exec", pod, "--", "bash", "-c", &ping])?;
    Ok((tcp, ping.trim().to_owned()))
}

/// The cluster IP of the Service and the pod address of Corral's `component` (`redis`, `object-store`).
async fn addresses(cluster: &Cluster, component: &str) -> anyhow::Result<Vec<String>> {
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/component={component}"));
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let service = services
        .list(&selector)
        .await?
        .items
        .into_iter()
        .find_map(|s| s.spec?.cluster_ip);
    let pod = pods
        .list(&selector)
        .await?
        .items
        .into_iter()
        .find_map(|p| p.status?.pod_ip);
    match (service, pod) {
        (Some(s), Some(p)) => Ok(vec![s, p]),
        _ => anyhow::bail!(
            "cannot find the {component} Service and pod in {}",
            cluster.corral_namespace
        ),
    }
}

#[tokio::test]
async fn a_pod_in_a_tenant_namespace_cannot_reach_redis_whatever_its_labels() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "wall-redis-net", |ns| async move {
        ns.apply(IDLE_AGENT)?;
        ns.harness_available(TIMEOUT).await?;
        let cluster = ns.cluster().clone();
        // Every label of a real harness pod, plus the label that used to open Redis and those of Corral's release.
        let harness = ns
            .harness_pods()
            .list(&ListParams::default().labels(&ns.harness_selector()))
            .await?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no harness pod"))?;
        let mut labels = harness.metadata.labels.unwrap_or_default();
        labels.remove("pod-template-hash");
        labels.insert("corral.dev/redis-client".into(), "true".into());
        labels.insert("app.kubernetes.io/instance".into(), "corral".into());
        labels.insert("app.kubernetes.io/part-of".into(), "corral".into());
        run_pod(&cluster, &ns.name, &probe_pod("forger", &labels)?).await?;

        // The permitted position: the same labels in Corral's namespace (another tenant label, so that the
        // harness Deployment does not adopt the pod).
        let permitted = format!("wall-probe-{}", ns.name);
        let mut system_labels = labels.clone();
        system_labels.insert("corral.dev/tenant-namespace".into(), format!("{}-probe", ns.name));
        let system_pods = run_pod(
            &cluster,
            &cluster.corral_namespace,
            &probe_pod(&permitted, &system_labels)?,
        )
        .await?;

        let outcome = async {
            for ip in addresses(&cluster, "redis").await? {
                let (tcp, ping) = probe(&cluster, &cluster.corral_namespace, &permitted, &ip)?;
                assert_eq!(
                    tcp, "open",
                    "a harness-labelled pod in Corral's namespace reaches Redis at {ip}"
                );
                assert!(
                    ping.contains("NOAUTH"),
                    "an unauthenticated PING from the permitted position is refused at {ip}: {ping}"
                );
                let (tcp, ping) = probe(&cluster, &ns.name, "forger", &ip)?;
                assert_eq!(
                    tcp, "closed",
                    "a tenant's pod with forged labels reaches Redis at {ip}"
                );
                assert!(!ping.contains("NOAUTH") && !ping.contains("PONG"), "{ping}");
            }
            anyhow::Ok(())
        }
        .await;
        system_pods
            .delete(&permitted, &DeleteParams::default().grace_period(0))
            .await?;
        outcome
    })
    .await
}

#[tokio::test]
async fn a_pod_in_a_tenant_namespace_cannot_reach_the_object_store_whatever_its_labels() -> anyhow::Result<()>
{
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "wall-s3-net", |ns| async move {
        let cluster = ns.cluster().clone();
        // The permitted position is the gateway itself; the forger carries every label of a gateway pod.
        let gateways: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
        let gateway = gateways
            .list(&ListParams::default().labels("app.kubernetes.io/component=gateway"))
            .await?
            .items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .ok_or_else(|| anyhow::anyhow!("no running gateway pod"))?;
        let gateway_name = gateway.metadata.name.clone().unwrap_or_default();
        let mut labels = gateway.metadata.labels.unwrap_or_default();
        labels.remove("pod-template-hash");
        run_pod(&cluster, &ns.name, &probe_pod("forger", &labels)?).await?;
        for ip in addresses(&cluster, "object-store").await? {
            let permitted = tcp(&cluster, &cluster.corral_namespace, &gateway_name, &ip, 8333)?;
            assert_eq!(permitted, "open", "the gateway reaches the object store at {ip}");
            let forged = tcp(&cluster, &ns.name, "forger", &ip, 8333)?;
            assert_eq!(
                forged, "closed",
                "a tenant's pod with a gateway's labels reaches the object store at {ip}"
            );
        }
        Ok(())
    })
    .await
}

/// The Redis password of `ns`'s harness, from its Secret in Corral's namespace.
async fn tenant_password(ns: &TestNamespace) -> anyhow::Result<String> {
    let cluster = ns.cluster();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let secret = secrets.get(&ns.harness_name()).await?;
    let data = secret.data.unwrap_or_default();
    let url = String::from_utf8(data.get("redis-url").map(|v| v.0.clone()).unwrap_or_default())?;
    anyhow::ensure!(
        url.contains(&format!("://{}:", acl::tenant_user(&ns.name))),
        "the harness connects as its tenant's own user: {}",
        acl::redact(&url)
    );
    Ok(String::from_utf8(
        data.get("redis-password")
            .map(|v| v.0.clone())
            .ok_or_else(|| anyhow::anyhow!("the harness Secret has no redis-password"))?,
    )?)
}

#[tokio::test]
async fn a_tenants_harness_credentials_read_its_own_log_and_not_another_tenants() -> anyhow::Result<()> {
    let system = system_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "wall-redis-a", |a| async move {
        let cluster = a.cluster().clone();
        TestNamespace::run(&cluster, "wall-redis-b", |b| async move {
            for ns in [&a, &b] {
                ns.apply(IDLE_AGENT)?;
            }
            for ns in [&a, &b] {
                ns.harness_available(TIMEOUT).await?;
            }
            let admin = Store::connect(&system, Config::default()).await?;
            let message: EventBody = serde_json::from_value(serde_json::json!({
                "type": "user.message", "content": [{"type": "text", "text": "for my eyes only"}]
            }))?;
            for ns in [&a, &b] {
                admin
                    .session(&ns.name, "s1")
                    .append_user([message.clone()])
                    .await?;
            }

            let password = tenant_password(&a).await?;
            let as_a = acl::with_credentials(&system, &acl::tenant_user(&a.name), &password)?;
            let store = Store::connect(&as_a, Config::default()).await?;
            // A's own log: readable.
            let own = store.session(&a.name, "s1").range(None, 10, Order::Asc).await?;
            assert_eq!(own.events.len(), 1, "tenant A's user reads A's log");
            // B's log: refused by Redis, for reads and writes alike.
            let foreign = store.session(&b.name, "s1");
            for denied in [
                foreign.range(None, 10, Order::Asc).await.err(),
                foreign.append_user([message.clone()]).await.err(),
            ] {
                let err = denied.ok_or_else(|| anyhow::anyhow!("tenant A's user reached B's log"))?;
                assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
            }
            assert_eq!(
                admin
                    .session(&b.name, "s1")
                    .range(None, 10, Order::Asc)
                    .await?
                    .events
                    .len(),
                1,
                "B's log is untouched"
            );
            // A wrong password is refused too.
            let wrong = acl::with_credentials(&system, &acl::tenant_user(&a.name), "not-the-password")?;
            assert!(Store::connect(&wrong, Config::default()).await.is_err());

            // Without credentials nothing works, not even PING.
            let (_, host) = system
                .rsplit_once('@')
                .ok_or_else(|| anyhow::anyhow!("no credentials in the URL"))?;
            let anonymous = redis::Client::open(format!("redis://{host}"))?;
            let refused = match anonymous.get_multiplexed_async_connection().await {
                Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await.err(),
                Err(e) => Some(e),
            };
            let err = refused.ok_or_else(|| anyhow::anyhow!("an unauthenticated PING was answered"))?;
            assert!(err.to_string().contains("NOAUTH"), "{err}");

            // No Secret of a tenant namespace holds a Redis password.
            let tenant_secrets = a.api::<Secret>().list(&ListParams::default()).await?.items;
            for s in tenant_secrets {
                for value in s.data.unwrap_or_default().values() {
                    let value = String::from_utf8_lossy(&value.0);
                    assert!(
                        !value.contains(&password) && !value.contains("redis://"),
                        "the tenant namespace's Secret {} holds Redis credentials",
                        s.metadata.name.unwrap_or_default()
                    );
                }
            }
            Ok(())
        })
        .await
    })
    .await
}
