//! Sandboxes on the real cluster, with the test playing the harness's part of the contract: it asks for a sandbox
//! through `status.sandbox.requestedAt`, waits for the endpoint, and runs tools through the real daemon.
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_api::{
    Environment, Session,
    conditions::{self, types},
    session::SandboxPhase,
};
use corral_e2e::{
    Cluster, TestNamespace,
    sandbox::{
        TIMEOUT, bash, client, request_sandbox, sandbox_phase, sandbox_token, session_pods, wait_ready,
    },
    wait,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};

fn manifests(env_spec: &str) -> String {
    corral_e2e::sandbox::manifests(env_spec, "")
}

#[tokio::test]
async fn sandbox_appears_on_request_runs_tools_locked_down_is_reaped_and_comes_back() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "sandbox", |ns| async move {
        ns.apply(&manifests("{sandbox: {idleTimeout: 15s}}"))?;
        let sessions = ns.api::<Session>();
        wait::object(&sessions, "s1", TIMEOUT, "session Ready", |s: &Session| {
            s.status
                .as_ref()
                .is_some_and(|s| conditions::is_true(&s.conditions, types::READY))
        })
        .await?;
        assert!(
            session_pods(&ns).await?.is_empty(),
            "no sandbox pod before a tool call asks for one"
        );

        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "sandbox Ready").await?;
        let c = client(&ns, &ready, &format!("{}-a", ns.name)).await?;
        assert_eq!(
            bash(&c, "id -u").await?.trim(),
            "65532",
            "the sandbox runs as non-root"
        );
        let token_files = bash(
            &c,
            "ls /var/run/secrets/kubernetes.io/serviceaccount 2>&1 || true",
        )
        .await?;
        assert!(
            token_files.contains("No such file"),
            "no service account token: {token_files}"
        );
        let caps = bash(&c, "grep CapEff /proc/self/status").await?;
        assert!(caps.contains("0000000000000000"), "no capabilities: {caps}");
        let env = bash(&c, "env").await?;
        assert!(
            !env.contains("CORRAL_SANDBOX_TOKEN"),
            "the daemon's settings stay out of the shell: {env}"
        );
        bash(&c, "cd /workspace && echo kept > note.txt && export GREETING=hi").await?;
        assert_eq!(
            bash(&c, "cat note.txt; echo $GREETING").await?.trim(),
            "kept\nhi",
            "shell state carries over"
        );

        let pod = session_pods(&ns)
            .await?
            .into_iter()
            .next()
            .expect("the session's pod");
        let spec = pod.spec.expect("pod spec");
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.enable_service_links, Some(false));

        // No tool call for the idle timeout: the pod goes, and the status says so.
        wait::object(&sessions, "s1", TIMEOUT, "sandbox reaped", |s: &Session| {
            sandbox_phase(s) == Some(SandboxPhase::Reaped)
        })
        .await?;
        wait::until("sandbox pod deleted", TIMEOUT, || async {
            Ok(session_pods(&ns).await?.is_empty().then_some(()))
        })
        .await?;

        // The next tool call provisions again (with an ephemeral workspace, a fresh one).
        request_sandbox(&ns, "s1").await?;
        let again = wait_ready(&ns, "sandbox Ready again").await?;
        let c = client(&ns, &again, &format!("{}-b", ns.name)).await?;
        assert_eq!(bash(&c, "ls /workspace | wc -l").await?.trim(), "0");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_lost_sandbox_pod_is_reported_and_replaced_on_the_next_request() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "sandbox-loss", |ns| async move {
        ns.apply(&manifests("{sandbox: {idleTimeout: 10m}}"))?;
        request_sandbox(&ns, "s1").await?;
        wait_ready(&ns, "sandbox Ready").await?;
        let first = session_pods(&ns).await?.remove(0);
        ns.api::<Pod>()
            .delete(
                &first.metadata.name.clone().unwrap_or_default(),
                &DeleteParams::default().grace_period(0),
            )
            .await?;
        let lost = wait::object(
            &ns.api::<Session>(),
            "s1",
            TIMEOUT,
            "sandbox Failed",
            |s: &Session| sandbox_phase(s) == Some(SandboxPhase::Failed),
        )
        .await?;
        let cond =
            conditions::find(&lost.status.unwrap_or_default().conditions, types::SANDBOX_READY).cloned();
        assert_eq!(cond.map(|c| c.reason), Some("PodEnded".to_owned()));

        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "a new sandbox").await?;
        let c = client(&ns, &ready, &format!("{}-c", ns.name)).await?;
        assert_eq!(bash(&c, "echo back").await?.trim(), "back");
        let second = session_pods(&ns).await?.remove(0);
        assert_ne!(
            first.metadata.uid, second.metadata.uid,
            "a new pod replaced the lost one"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_warm_pool_is_kept_full_and_serves_claims() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "warm", |ns| async move {
        ns.apply(&manifests("{sandbox: {warmPool: 1}}"))?;
        let envs = ns.api::<Environment>();
        let warm_ready = |n: i32| {
            move |e: &Environment| {
                e.status
                    .as_ref()
                    .and_then(|s| s.warm_pool.as_ref())
                    .is_some_and(|w| w.ready == n)
            }
        };
        wait::object(&envs, "box", TIMEOUT, "one warm pod ready", warm_ready(1)).await?;

        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "sandbox Ready from the pool").await?;
        let pod = ready
            .status
            .as_ref()
            .and_then(|s| s.sandbox.as_ref())
            .and_then(|b| b.pod.clone())
            .unwrap();
        assert!(
            pod.starts_with("warm-box-"),
            "the claim was served from the pool: {pod}"
        );
        let c = client(&ns, &ready, &format!("{}-w", ns.name)).await?;
        assert_eq!(
            bash(&c, "echo claimed").await?.trim(),
            "claimed",
            "the session's token works on the claimed pod"
        );

        // The pool refills, and the claimed pod is the session's alone.
        wait::object(&envs, "box", TIMEOUT, "the pool refilled", warm_ready(1)).await?;
        let warm = ns
            .api::<Pod>()
            .list(&ListParams::default().labels("corral.dev/warm=true"))
            .await?
            .items;
        assert!(
            warm.iter()
                .all(|p| p.metadata.name.as_deref() != Some(pod.as_str()))
        );

        // Deleting the Environment takes its warm pods, and their daemon tokens leave Redis with them.
        let warm: Vec<String> = warm.into_iter().filter_map(|p| p.metadata.name).collect();
        assert!(!warm.is_empty());
        for name in &warm {
            assert!(
                sandbox_token(&ns.name, name).await?.is_some(),
                "the warm pod {name} has its token"
            );
        }
        envs.delete("box", &DeleteParams::default()).await?;
        let pods = ns.api::<Pod>();
        for name in &warm {
            wait::until("the warm pod gone with its Environment", TIMEOUT, || async {
                Ok(pods.get_opt(name).await?.is_none().then_some(()))
            })
            .await?;
            wait::until("its token gone with it", Duration::from_secs(10), || async {
                Ok(sandbox_token(&ns.name, name).await?.is_none().then_some(()))
            })
            .await?;
        }
        assert!(
            sandbox_token(&ns.name, &pod).await?.is_some(),
            "the claimed pod, still the session's, keeps its token"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_surfaces_as_a_condition() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "pull", |ns| async move {
        ns.apply(&manifests(
            "{sandbox: {image: corral/no-such-image:dev, imagePullPolicy: Never}}",
        ))?;
        request_sandbox(&ns, "s1").await?;
        let s = wait::object(
            &ns.api::<Session>(),
            "s1",
            TIMEOUT,
            "ContainerError",
            |s: &Session| {
                s.status
                    .as_ref()
                    .and_then(|st| conditions::find(&st.conditions, types::SANDBOX_READY))
                    .is_some_and(|c| c.reason == "ContainerError")
            },
        )
        .await?;
        let message = conditions::find(&s.status.unwrap_or_default().conditions, types::SANDBOX_READY)
            .unwrap()
            .message
            .clone();
        assert!(message.contains("ErrImageNeverPull"), "{message}");
        Ok(())
    })
    .await
}

/// A pod with no sandbox labels, locked down like a sandbox and admitted by Redis's policy: what it reaches, the
/// sandbox would reach too were it not for the sandbox's own NetworkPolicy.
const CONTROL_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: control
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: shell
      image: corral/sandbox-base:dev
      imagePullPolicy: IfNotPresent
      command: [sleep, infinity]
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
"#;

/// A shell command printing `open` when a TCP connection to `ip:port` succeeds within 3 s, else `closed`.
fn tcp_probe(ip: &str, port: i32) -> String {
    format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null && echo open || echo closed")
}

/// The cluster-internal endpoints a sandbox must never reach: (what, ip, port).
async fn internal_endpoints(ns: &TestNamespace) -> anyhow::Result<Vec<(&'static str, String, i32)>> {
    use k8s_openapi::api::core::v1::{Endpoints, Service};
    let client = ns.cluster().client.clone();
    let default_services: kube::Api<Service> = kube::Api::namespaced(client.clone(), "default");
    let api_ip = default_services
        .get("kubernetes")
        .await?
        .spec
        .and_then(|s| s.cluster_ip);
    let endpoints: kube::Api<Endpoints> = kube::Api::namespaced(client.clone(), "default");
    let node = endpoints.get("kubernetes").await?;
    let subset = node.subsets.and_then(|s| s.into_iter().next());
    let node_ip = subset
        .as_ref()
        .and_then(|s| s.addresses.as_ref()?.first().map(|a| a.ip.clone()));
    let node_port = subset.and_then(|s| s.ports?.first().map(|p| p.port));
    let corral_services: kube::Api<Service> = kube::Api::namespaced(client, &ns.cluster().corral_namespace);
    let redis = corral_services
        .list(&ListParams::default().labels("app.kubernetes.io/component=redis"))
        .await?
        .items
        .into_iter()
        .find_map(|s| s.spec?.cluster_ip);
    let harness = wait::until("the namespace's harness pod", TIMEOUT, || async {
        let pods = ns
            .harness_pods()
            .list(&ListParams::default().labels(&ns.harness_selector()))
            .await?;
        Ok(pods.items.into_iter().find_map(|p| {
            let ip = p.status?.pod_ip?;
            let port = p.spec?.containers.iter().find_map(|c| {
                c.ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some("metrics"))
                    .map(|p| p.container_port)
            })?;
            Some((ip, port))
        }))
    })
    .await?;
    let missing = |what: &str| anyhow::anyhow!("cannot find {what}");
    Ok(vec![
        (
            "the API server's Service",
            api_ip.ok_or_else(|| missing("the kubernetes Service"))?,
            443,
        ),
        (
            "the API server on the node",
            node_ip.ok_or_else(|| missing("the API server's endpoint"))?,
            node_port.ok_or_else(|| missing("the API server's port"))?,
        ),
        ("Redis", redis.ok_or_else(|| missing("the Redis Service"))?, 6379),
        ("the harness's metrics", harness.0, harness.1),
    ])
}

#[tokio::test]
async fn the_sandbox_reaches_neither_the_api_server_nor_redis_nor_the_harness() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "sandbox-net", |ns| async move {
        ns.apply(&manifests("{}"))?;
        ns.apply(CONTROL_POD)?;
        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "sandbox Ready").await?;
        let c = client(&ns, &ready, &format!("{}-a", ns.name)).await?;
        wait::object(
            &ns.api::<Pod>(),
            "control",
            TIMEOUT,
            "control pod Running",
            |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        )
        .await?;
        let from_control = |script: &str| {
            ns.cluster()
                .kubectl(&["-n", &ns.name, "exec", "control", "--", "bash", "-c", script])
                .map(|out| out.trim().to_owned())
        };

        for (what, ip, port) in internal_endpoints(&ns).await? {
            let probe = tcp_probe(&ip, port);
            // Redis admits only Corral's own pods (e2e/tests/wall_redis.rs): no pod of a tenant reaches it.
            let open_to_tenant_pods = what != "Redis";
            assert_eq!(
                from_control(&probe)? == "open",
                open_to_tenant_pods,
                "{what} ({ip}:{port}) from a pod without the sandbox's policy"
            );
            assert_eq!(
                bash(&c, &probe).await?.trim(),
                "closed",
                "the sandbox must not reach {what} ({ip}:{port})"
            );
        }

        // Only the harness gets in: another pod of the namespace is refused at the daemon's port.
        let sandbox_ip = session_pods(&ns)
            .await?
            .into_iter()
            .find_map(|p| p.status?.pod_ip)
            .ok_or_else(|| anyhow::anyhow!("the sandbox pod has an address"))?;
        assert_eq!(
            from_control(&tcp_probe(&sandbox_ip, 7070))?,
            "closed",
            "a non-harness pod reaches the daemon"
        );
        Ok(())
    })
    .await
}

/// A statically provisioned volume for the test's workspace claim: a node directory the sandbox's uid may write
/// (the local cluster has no dynamic provisioner honouring `fsGroup`), bound through a storage class of its own.
fn workspace_volume(name: &str, dir: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}, labels: {{corral.dev/e2e: "true"}}}}
spec:
  storageClassName: {name}
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {dir}, type: Directory}}
"#
    )
}

#[tokio::test]
async fn a_persistent_workspace_keeps_its_files_across_reaping() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::connect().await?;
    let volume = format!("corral-e2e-ws-{}", std::process::id());
    // The cluster's components share this machine's /tmp.
    let dir = format!("/tmp/{volume}");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    cluster.kubectl_with_input(&["apply", "-f", "-"], Some(&workspace_volume(&volume, &dir)))?;
    let result = TestNamespace::run(&cluster, "sandbox-pv", |ns| {
        let volume = volume.clone();
        async move {
            ns.apply(&manifests(&format!(
                "{{sandbox: {{idleTimeout: 15s, workspace: {{type: persistent, size: 1Gi, storageClassName: {volume}}}}}}}"
            )))?;
            request_sandbox(&ns, "s1").await?;
            let ready = wait_ready(&ns, "sandbox Ready").await?;
            let c = client(&ns, &ready, &format!("{}-a", ns.name)).await?;
            bash(&c, "echo kept > /workspace/note.txt").await?;

            wait::object(&ns.api::<Session>(), "s1", TIMEOUT, "sandbox reaped", |s: &Session| {
                sandbox_phase(s) == Some(SandboxPhase::Reaped)
            })
            .await?;
            wait::until("sandbox pod deleted", TIMEOUT, || async {
                Ok(session_pods(&ns).await?.is_empty().then_some(()))
            })
            .await?;

            request_sandbox(&ns, "s1").await?;
            let again = wait_ready(&ns, "sandbox Ready again").await?;
            let c = client(&ns, &again, &format!("{}-b", ns.name)).await?;
            assert_eq!(
                bash(&c, "cat /workspace/note.txt").await?.trim(),
                "kept",
                "the persistent workspace outlives the reaped pod"
            );
            Ok(())
        }
    })
    .await;
    let _ = cluster.kubectl(&["delete", "pv", &volume, "--wait=false"]);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Lets the namespace's sandboxes reach `ip:port`: how a user opens one internal service (here a package mirror)
/// to sandboxes, whose own policy keeps every internal address closed.
fn mirror_policy(ip: &str, port: u16) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: sandbox-mirror}}
spec:
  podSelector: {{matchLabels: {{app.kubernetes.io/component: sandbox}}}}
  policyTypes: [Egress]
  egress:
    - to: [{{ipBlock: {{cidr: {ip}/32}}}}]
      ports: [{{port: {port}, protocol: TCP}}]
"#
    )
}

#[tokio::test]
async fn the_environments_packages_are_installed_before_the_first_tool_call() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    // A package mirror on this host: a directory listing pip reads as find-links, holding one wheel.
    let wheels = tempfile::tempdir()?;
    let make_wheel = corral_e2e::cluster::repo_root().join("sandbox/tests/fixtures/make_wheel.py");
    let made = std::process::Command::new("python3")
        .arg(&make_wheel)
        .arg(wheels.path())
        .status()?;
    anyhow::ensure!(made.success(), "building the test wheel");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut mirror = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(wheels.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = TestNamespace::run(&cluster, "sandbox-packages", |ns| async move {
        let address = ns.cluster().forward_from_host(&format!("{}-mirror", ns.name), port)?;
        let (ip, _) = address.split_once(':').unwrap_or_default();
        ns.apply(&mirror_policy(ip, port))?;
        ns.apply(&manifests(&format!(
            r#"{{config: {{packages: {{pip: ["hello-corral==1.0"]}}}},
                sandbox: {{env: [{{name: PIP_NO_INDEX, value: "1"}}, {{name: PIP_FIND_LINKS, value: "http://{address}/"}},
                               {{name: PIP_TRUSTED_HOST, value: "{ip}"}},
                               {{name: NO_PROXY, value: "{ip}"}}, {{name: no_proxy, value: "{ip}"}}]}}}}"#
        )))?;
        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "sandbox Ready with its packages").await?;
        let c = client(&ns, &ready, &format!("{}-a", ns.name)).await?;
        assert_eq!(bash(&c, "hello-corral").await?.trim(), "installed by corral", "the package's script is on PATH");
        assert_eq!(
            bash(&c, "python3 -c 'import hello_corral; print(hello_corral.VALUE)'").await?.trim(),
            "installed by corral"
        );
        assert_eq!(bash(&c, "id -u").await?.trim(), "65532", "installed without root");
        Ok(())
    })
    .await;
    let _ = mirror.kill();
    result
}
