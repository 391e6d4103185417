//! Repository resources on the real cluster, end to end: a real git smart-HTTP server (Debian's `git http-backend`
//! behind lighttpd requiring a token, image `corral/git-server:dev` from e2e/images/build.sh) runs in the test
//! namespace; a session is created through the gateway with a `github_repository` resource carrying the token as
//! `authorization_token`, as the Managed Agents SDK sends it. The agent (a scripted model on this host) finds the
//! repository cloned at its checkout, commits, and pushes through the egress proxy, which adds the token; from
//! inside the sandbox the token is nowhere to be found, nor the object store's secret key. A session with a wrong
//! token reports the failed clone, and clones once its token is rotated through `resources.update`.
//!
//! The server's pod is reached from sandboxes at the test host (10.201.0.1, opened to the proxy by
//! `egress.internalHosts` in hack/e2e.sh) through a relay on this host, so the proxy's walls stay as they are: a
//! pod of the cluster is an internal address no tenant reaches.
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{Client, Forward, gateway_url, read_until, tenant},
    model::{ModelServer, Reply, tool_messages},
    wait,
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

const REPO: &str = "project";

/// The bundled object store's S3 secret key (the chart's Secret labelled `app.kubernetes.io/component:
/// object-store` in Corral's namespace).
async fn object_store_secret_key(cluster: &Cluster) -> anyhow::Result<String> {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let listed = secrets
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/component=object-store"))
        .await?;
    listed
        .items
        .iter()
        .find_map(|s| s.data.as_ref()?.get("secretAccessKey"))
        .and_then(|key| String::from_utf8(key.0.clone()).ok())
        .filter(|key| key.len() > 12)
        .ok_or_else(|| anyhow::anyhow!("the bundled object store's Secret holds no secretAccessKey"))
}

fn git_server(token: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: git-server, labels: {{app: git-server}}}}
spec:
  automountServiceAccountToken: false
  securityContext: {{runAsNonRoot: true, runAsUser: 65532, seccompProfile: {{type: RuntimeDefault}}}}
  containers:
  - name: git
    image: corral/git-server:dev
    imagePullPolicy: IfNotPresent
    env: [{{name: GIT_TOKEN, value: "{token}"}}, {{name: GIT_REPO, value: {REPO}}}]
    ports: [{{containerPort: 8080}}]
    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"#
    )
}

/// Starts the git server and returns the address sandboxes reach it at (`10.201.0.1:<port>`), with the relays.
async fn serve_git(ns: &TestNamespace, token: &str) -> anyhow::Result<(String, [Forward; 2])> {
    ns.apply(&git_server(token))?;
    let pod = wait::object(
        &ns.api::<Pod>(),
        "git-server",
        Duration::from_secs(120),
        "git server ready",
        |p: &Pod| {
            p.status.as_ref().is_some_and(|s| {
                s.pod_ip.is_some()
                    && s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await?;
    let ip = pod.status.and_then(|s| s.pod_ip).unwrap_or_default();
    let (to_pod, into_cluster) = (Forward::unique_name("git-out"), Forward::unique_name("git-in"));
    let port = ns.cluster().forward(&to_pod, &format!("{ip}:8080"))?;
    let address = ns.cluster().forward_from_host(&into_cluster, port)?;
    Ok((address, [Forward::owned(to_pod), Forward::owned(into_cluster)]))
}

/// An agent whose model is `model` (served on this host), and a `limited` environment that allows `host` only.
async fn agent_and_environment(
    ns: &TestNamespace,
    api: &Client,
    name: &str,
    model: &ModelServer,
    host: &str,
) -> anyhow::Result<(String, String)> {
    let forward = Forward::unique_name("git-model");
    let base_url = format!("http://{}", ns.cluster().forward_from_host(&forward, model.port)?);
    std::mem::forget(Forward::owned(forward)); // stopped with the cluster's forwards; the agent needs it all along
    let agent = api
        .create(
            "/v1/agents",
            json!({"name": name, "model": {"id": "m", "provider": {"type": "openai", "base_url": base_url}},
                   "tools": [{"type": "agent_toolset_20260401"}]}),
        )
        .await?;
    let env = api
        .create(
            "/v1/environments",
            json!({"name": name, "config": {"type": "cloud",
                   "networking": {"type": "limited", "allowed_hosts": [host]}}}),
        )
        .await?;
    Ok((agent, env))
}

/// Creates a session with the repository at `url` (token `token`), runs one turn, and returns the session's id
/// and the tool results the model was told, in order.
async fn turn(
    api: &Client,
    agent: &str,
    env: &str,
    url: &str,
    token: &str,
    model: &ModelServer,
) -> anyhow::Result<(String, Vec<String>)> {
    let created = api
        .post(
            "/v1/sessions",
            json!({"agent": agent, "environment_id": env, "resources": [{
                "type": "github_repository", "url": url, "authorization_token": token,
                "checkout": {"type": "branch", "name": "main"}}]}),
        )
        .await?;
    assert!(
        !created.to_string().contains(token),
        "the token is never echoed: {created}"
    );
    assert_eq!(
        created["resources"][0]["mount_path"],
        format!("/workspace/{REPO}")
    );
    let session = created["id"].as_str().unwrap_or_default().to_owned();
    let mut stream = api.stream(&session, None).await?;
    api.post(
        &format!("/v1/sessions/{session}/events"),
        json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "work on the repository"}]}]}),
    )
    .await?;
    read_until(&mut stream, |e| e.event == "session.status_idle").await?;
    Ok((session, tool_results(model)))
}

/// The tool results the model was told in its last request, in order.
fn tool_results(model: &ModelServer) -> Vec<String> {
    model
        .requests()
        .last()
        .map(tool_messages)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, content)| content)
        .collect()
}

fn bash(command: &str) -> Reply {
    Reply::ToolCall {
        name: "bash".into(),
        arguments: json!({ "command": command }),
    }
}

#[tokio::test]
async fn a_repository_is_cloned_and_pushed_to_through_the_proxy_and_its_token_never_enters_the_sandbox()
-> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "repos").await?;
    TestNamespace::run(&cluster, "repos", |ns| {
        let base = base.clone();
        async move {
            let token = format!("ghp_e2e{}x{}", std::process::id(), ns.name.len());
            let (address, _relays) = serve_git(&ns, &token).await?;
            let url = format!("http://{address}/{REPO}.git");
            let api = tenant(&base, ns.cluster(), &ns.name).await?;
            // The token split in two, so that no command the agent runs holds it whole; the same for the bundled
            // object store's secret key, which no sandbox may see either.
            let (head, tail) = token.split_at(5);
            let store_key = object_store_secret_key(ns.cluster()).await?;
            let (key_head, key_tail) = store_key.split_at(6);
            let model = ModelServer::start(vec![
                bash(&format!(
                    "cd /workspace/{REPO} && git log --format=%s && git rev-parse --abbrev-ref HEAD && \
                     echo change > agent.txt && git add agent.txt && \
                     git -c user.name=Agent -c user.email=agent@corral.test commit -qm 'Agent change' && \
                     git push -q origin HEAD:main 2>&1; echo push=$?; git fetch -q origin 2>&1; echo fetch=$?"
                )),
                bash(
                    "env; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; \
                     cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; \
                     git -C /workspace/project config --list --show-origin; git config --global --list 2>&1",
                ),
                bash(&format!(
                    "t={head}; t=\"${{t}}{tail}\"; k={key_head}; k=\"${{k}}{key_tail}\"; [ ${{#t}} -gt 10 ] && [ ${{#k}} -gt 10 ] && \
                     grep -rIlsF -e \"$t\" -e \"$k\" /etc /workspace /tmp /home /root /var /mnt 2>/dev/null; echo files-done"
                )),
                Reply::Text("done".into()),
            ])
            .await?;
            let (agent, env) = agent_and_environment(&ns, &api, "coder", &model, &address).await?;
            let (_, results) = turn(&api, &agent, &env, &url, &token, &model).await?;
            assert_eq!(results.len(), 3, "{results:?}");

            let work = &results[0];
            assert!(work.contains(&format!("Initial commit of {REPO}")), "git log sees the commit: {work}");
            assert!(work.lines().any(|l| l == "main"), "checked out at main: {work}");
            assert!(work.contains("push=0"), "the push went through the proxy: {work}");
            assert!(work.contains("fetch=0"), "{work}");
            let pushed = ns.cluster().kubectl(&[
                "-n", &ns.name, "exec", "git-server", "--", "git", "-C", &format!("/tmp/git/{REPO}.git"), "log",
                "--format=%s", "main",
            ])?;
            assert!(pushed.starts_with("Agent change"), "the server has the agent's commit: {pushed}");

            let inside = &results[1];
            assert!(inside.contains("credential") || inside.contains("file:"), "the dump ran: {inside}");
            assert!(!inside.contains(&token), "the token is in the sandbox's environment, processes or git config");
            assert!(!inside.contains(tail), "not even a part of it");
            assert!(!inside.contains(key_tail), "the object store's secret key is in the sandbox's environment or processes");
            assert_eq!(results[2].trim(), "files-done", "the token is in a file of the sandbox: {}", results[2]);

            // A wrong token: the clone fails, and the first tool call says so.
            let failing = ModelServer::start(vec![
                bash("ls /workspace"),
                Reply::Text("gave up".into()),
                bash(&format!("git -C /workspace/{REPO} log --format=%s")),
                Reply::Text("done".into()),
            ])
            .await?;
            let (agent, env) = agent_and_environment(&ns, &api, "locked-out", &failing, &address).await?;
            let (session, results) = turn(&api, &agent, &env, &url, "ghp_wrong", &failing).await?;
            let told = results.first().cloned().unwrap_or_default();
            assert!(
                told.contains("could not be cloned") && told.contains(&url),
                "the failed clone is reported: {told}"
            );

            // Rotated as the SDK does it (resources.update): the gateway rewrites the token Secret, the operator
            // carries it into the sandbox's egress grant, and the next tool call clones with it.
            let listed = api
                .ok(reqwest::Method::GET, &format!("/v1/sessions/{session}/resources"), None)
                .await?;
            let resource = listed["data"][0]["id"].as_str().unwrap_or_default().to_owned();
            let updated = api
                .post(
                    &format!("/v1/sessions/{session}/resources/{resource}"),
                    json!({"authorization_token": token}),
                )
                .await?;
            assert_eq!(updated["id"], resource.as_str());
            assert!(!updated.to_string().contains(&token), "the token is never echoed: {updated}");
            let mut stream = api.stream(&session, None).await?;
            api.post(
                &format!("/v1/sessions/{session}/events"),
                json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "try again"}]}]}),
            )
            .await?;
            read_until(&mut stream, |e| e.event == "session.status_idle").await?;
            let after = tool_results(&failing).last().cloned().unwrap_or_default();
            assert!(
                after.contains(&format!("Initial commit of {REPO}")),
                "the rotated token clones: {after}"
            );
            Ok(())
        }
    })
    .await
}

/// Commits a skill under `skills/report` of the git server's repository (as its owner would push it).
fn push_skill(ns: &TestNamespace) -> anyhow::Result<()> {
    let script = format!(
        "set -e; export HOME=/tmp; w=$(mktemp -d); git clone -q /tmp/git/{REPO}.git $w/w; \
         mkdir -p $w/w/skills/report; \
         printf '%s\\n' '---' 'name: git-report' 'description: Writes a report from a skill kept in git.' '---' \
           'Run report.sh.' > $w/w/skills/report/SKILL.md; \
         printf 'echo GIT-REPORT-READY\\n' > $w/w/skills/report/report.sh; \
         cd $w/w && git add . && git -c user.name=Owner -c user.email=owner@corral.test commit -qm 'A skill' && \
         git push -q origin main"
    );
    ns.cluster()
        .kubectl(&["-n", &ns.name, "exec", "git-server", "--", "sh", "-c", &script])?;
    Ok(())
}

/// An Agent custom resource named `name` whose skill is `skills/report` of `url` at `main`, its token in Secret
/// `secret` (labelled as a repository token when `labelled`), on the OpenAI-compatible model at `base_url`.
fn skill_agent(name: &str, url: &str, base_url: &str, secret: &str, token: &str, labelled: bool) -> String {
    let label = if labelled {
        "labels: {corral.dev/credential: repository}"
    } else {
        "labels: {}"
    };
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: {secret}, {label}}}
stringData: {{token: "{token}"}}
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {{name: {name}}}
spec:
  model: {{id: m, provider: {{type: openai, baseUrl: "{base_url}"}}}}
  tools: [{{type: agent_toolset_20260401}}]
  skills:
  - {{type: gitRepository, skillId: "{url}", version: main, path: skills/report,
      authorizationSecretRef: {{name: {secret}, key: token}}}}
"#
    )
}

/// The `session.error` a new session of `agent` reports for its first message.
async fn session_error(api: &Client, agent: &str, env: &str) -> anyhow::Result<String> {
    let session = api
        .create("/v1/sessions", json!({"agent": agent, "environment_id": env}))
        .await?;
    let mut stream = api.stream(&session, None).await?;
    api.post(
        &format!("/v1/sessions/{session}/events"),
        json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "report"}]}]}),
    )
    .await?;
    let events = read_until(&mut stream, |e| e.event == "session.error").await?;
    Ok(events.last().map(|e| e.data.clone()).unwrap_or_default())
}

#[tokio::test]
async fn a_skill_kept_in_a_git_repository_reaches_the_model_and_the_sandbox() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _gateway) = gateway_url(&cluster, "gitskill").await?;
    TestNamespace::run(&cluster, "gitskill", |ns| {
        let base = base.clone();
        async move {
            let token = format!("ghp_skill{}x{}", std::process::id(), ns.name.len());
            let (address, _relays) = serve_git(&ns, &token).await?;
            push_skill(&ns)?;
            let url = format!("http://{address}/{REPO}.git");
            let api = tenant(&base, ns.cluster(), &ns.name).await?;
            let model = ModelServer::start(vec![
                bash("cat /mnt/session/skills/git-report/SKILL.md && sh /mnt/session/skills/git-report/report.sh"),
                Reply::Text("done".into()),
            ])
            .await?;
            let forward = Forward::unique_name("skill-model");
            let base_url = format!("http://{}", ns.cluster().forward_from_host(&forward, model.port)?);
            let _model_forward = Forward::owned(forward);
            ns.apply(&skill_agent("reporter", &url, &base_url, "skill-token", &token, true))?;
            ns.apply(&skill_agent("unlabelled", &url, &base_url, "plain-token", &token, false))?;
            let env = api
                .create("/v1/environments", json!({"name": "skills", "config": {"type": "cloud"}}))
                .await?;

            let shown = api.ok(reqwest::Method::GET, "/v1/agents/reporter", None).await?;
            assert_eq!(
                shown["skills"][0],
                json!({"type": "git_repository", "skill_id": url, "version": "main", "path": "skills/report"}),
                "{shown}"
            );

            let session = api.create("/v1/sessions", json!({"agent": "reporter", "environment_id": env})).await?;
            let mut stream = api.stream(&session, None).await?;
            api.post(
                &format!("/v1/sessions/{session}/events"),
                json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "report"}]}]}),
            )
            .await?;
            read_until(&mut stream, |e| e.event == "session.status_idle").await?;
            let first = model.requests().first().cloned().unwrap_or_default().to_string();
            assert!(
                first.contains("Writes a report from a skill kept in git.")
                    && first.contains("/mnt/session/skills/git-report/SKILL.md"),
                "the system prompt names the skill: {first}"
            );
            let told = tool_results(&model).first().cloned().unwrap_or_default();
            assert!(told.contains("Run report.sh."), "SKILL.md is in the sandbox: {told}");
            assert!(told.contains("GIT-REPORT-READY"), "its script runs: {told}");

            // A Secret not labelled as a repository token is never sent anywhere: the agent cannot run, saying why.
            let error = session_error(&api, "unlabelled", &env).await?;
            assert!(error.contains("corral.dev/credential=repository"), "{error}");

            // A repository inside the cluster that the platform operator did not open (here Corral's own gateway)
            // is never fetched from: the harness's outbound wall refuses it.
            let services: kube::Api<k8s_openapi::api::core::v1::Service> =
                kube::Api::namespaced(ns.cluster().client.clone(), &ns.cluster().corral_namespace);
            let gateway_ip = services
                .get("corral-gateway")
                .await?
                .spec
                .and_then(|s| s.cluster_ip)
                .unwrap_or_default();
            let inside = format!("http://{gateway_ip}/skills.git");
            ns.apply(&skill_agent("inside", &inside, &base_url, "skill-token", &token, true))?;
            let error = session_error(&api, "inside", &env).await?;
            assert!(error.contains("internal address"), "{error}");
            Ok(())
        }
    })
    .await
}
