//! Each CEL rule of the CRDs beside its Rust twin: the same specs go through the API server's rules (evaluated by
//! `kube`'s CEL validator on the generated CRD schemas) and through [`super`]; a spec that breaks a CEL rule must
//! fail both with the rule's message, at the same field (or below it), and a valid spec must pass both. Every CEL
//! rule of the CRDs must have a case here, so a new rule cannot land without its Rust twin.

use std::collections::BTreeSet;

use kube::{CustomResourceExt, core::cel::Validator};
use serde_json::{Value, json};

use super::{SpecError, validate_agent, validate_environment, validate_session, validate_session_update};
use crate::{
    Agent, AgentSpec, Environment, EnvironmentSpec, Session, SessionSpec, common::METADATA_RULE_MESSAGE,
    session::FILE_MOUNT_PATH_RULE,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Agent,
    Environment,
    Session,
}

/// What a case expects.
#[derive(Clone, Copy, Debug)]
enum Breaks {
    /// Valid for both.
    Nothing,
    /// The CEL rule with this message, and its Rust twin.
    Cel(&'static str),
    /// A rule without a CEL twin: CEL passes, Rust fails.
    RustOnly,
}

struct Case {
    kind: Kind,
    spec: Value,
    /// The spec before an update (transition rules).
    old: Option<Value>,
    breaks: Breaks,
}

fn case(kind: Kind, spec: Value, breaks: Breaks) -> Case {
    Case {
        kind,
        spec,
        old: None,
        breaks,
    }
}

fn schema<K: CustomResourceExt>() -> Value {
    let crd = serde_json::to_value(K::crd()).expect("CRD as JSON");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The messages of every CEL rule in `schema`.
fn cel_messages(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(o) => {
            for rule in o
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.insert(
                    rule["message"]
                        .as_str()
                        .expect("every rule has a message")
                        .to_owned(),
                );
            }
            o.values().for_each(|v| cel_messages(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| cel_messages(v, out)),
        _ => {}
    }
}

/// The CEL failures, as (field, message).
fn cel(kind: Kind, spec: &Value, old: Option<&Value>) -> Vec<(String, String)> {
    let schema = match kind {
        Kind::Agent => schema::<Agent>(),
        Kind::Environment => schema::<Environment>(),
        Kind::Session => schema::<Session>(),
    };
    let old = old.map(|o| json!({ "spec": o }));
    match Validator::new().validate(&schema, &json!({ "spec": spec }), old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| (e.field_path.clone(), e.message.clone()))
            .collect(),
    }
}

fn rust(kind: Kind, spec: &Value, old: Option<&Value>) -> Result<(), SpecError> {
    fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> T {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
    }
    match (kind, old) {
        (Kind::Agent, _) => validate_agent(&parse::<AgentSpec>(spec)),
        (Kind::Environment, _) => validate_environment(&parse::<EnvironmentSpec>(spec)),
        (Kind::Session, None) => validate_session(&parse::<SessionSpec>(spec)),
        (Kind::Session, Some(old)) => {
            validate_session_update(&parse::<SessionSpec>(old), &parse::<SessionSpec>(spec))
        }
    }
}

fn agent(patch: Value) -> Value {
    let mut spec = json!({ "model": { "id": "m" } });
    merge(&mut spec, patch);
    spec
}

fn session(patch: Value) -> Value {
    let mut spec = json!({ "agent": { "name": "a", "version": 1 }, "environmentRef": { "name": "e" } });
    merge(&mut spec, patch);
    spec
}

fn merge(base: &mut Value, patch: Value) {
    if let (Value::Object(b), Value::Object(p)) = (base, patch) {
        b.extend(p);
    }
}

fn custom(name: &str) -> Value {
    json!({ "type": "custom", "name": name, "description": "d", "inputSchema": { "type": "object" } })
}

fn mcp(name: &str) -> (Value, Value) {
    (
        json!({ "type": "mcp_toolset", "mcpServerName": name }),
        json!({ "name": name, "url": "https://mcp.example.com" }),
    )
}

fn agent_cases() -> Vec<Case> {
    use Breaks::*;
    let a = |patch, breaks| case(Kind::Agent, agent(patch), breaks);
    let (tool, server) = mcp("docs");
    let provider = |p: Value| json!({ "model": { "id": "m", "provider": p } });
    let budget = |b: Value| json!({ "budget": b });
    let many_servers: Vec<Value> = (0..21).map(|i| mcp(&format!("s{i}")).1).collect();
    let many_tools: Vec<Value> = (0..21).map(|i| mcp(&format!("s{i}")).0).collect();
    vec![
        a(json!({}), Nothing),
        a(
            json!({
                "name": "coder", "system": "be brief", "metadata": { "team": "a" },
                "model": { "id": "m", "provider": { "type": "openai", "baseUrl": "https://llm.example.com/v1",
                           "apiKeySecretRef": { "name": "s", "key": "k" }, "maxTokens": 1024 } },
                "tools": [{ "type": "agent_toolset_20260401", "configs": [{ "name": "bash" }] }, tool.clone(), custom("lookup")],
                "mcpServers": [server.clone()],
                "skills": [{ "type": "anthropic", "skillId": "xlsx" }],
                "budget": { "maxCost": { "amount": "2500" } }, "totalBudget": { "maxTokens": 1000000 },
            }),
            Nothing,
        ),
        a(
            json!({ "tools": [tool.clone()] }),
            Cel("every mcp_toolset must name a server listed in mcpServers"),
        ),
        a(
            json!({ "mcpServers": [server.clone()] }),
            Cel("every MCP server must be referenced by an mcp_toolset in tools"),
        ),
        a(json!({ "name": "" }), Cel("name must be 1 to 256 characters")),
        a(
            json!({ "system": "x".repeat(100_001) }),
            Cel("system prompt must be at most 100000 characters"),
        ),
        a(
            json!({ "tools": vec![json!({ "type": "agent_toolset_20260401" }); 257] }),
            Cel("at most 256 tools"),
        ),
        a(
            json!({ "tools": many_tools, "mcpServers": many_servers }),
            Cel("at most 20 MCP servers"),
        ),
        a(json!({ "metadata": { "": "x" } }), Cel(METADATA_RULE_MESSAGE)),
        a(
            json!({ "model": { "id": "" } }),
            Cel("model id must be 1 to 256 characters"),
        ),
        a(
            provider(json!({ "type": "scripted" })),
            Cel("a scripted provider needs scriptRef"),
        ),
        a(
            provider(json!({ "type": "openai" })),
            Cel("an openai-compatible provider needs baseUrl"),
        ),
        a(
            provider(json!({ "baseUrl": "ftp://x" })),
            Cel("baseUrl must be an http(s) URL"),
        ),
        a(
            provider(json!({ "maxTokens": 0 })),
            Cel("maxTokens must be positive"),
        ),
        a(
            provider(json!({ "apiKeySecretRef": { "name": "", "key": "k" } })),
            Cel("secret name must not be empty"),
        ),
        a(
            provider(json!({ "apiKeySecretRef": { "name": "s", "key": "" } })),
            Cel("secret key must not be empty"),
        ),
        a(
            provider(json!({ "type": "scripted", "scriptRef": { "name": "", "key": "k" } })),
            Cel("configmap name must not be empty"),
        ),
        a(
            provider(json!({ "type": "scripted", "scriptRef": { "name": "c", "key": "" } })),
            Cel("configmap key must not be empty"),
        ),
        a(
            json!({ "tools": [{ "type": "agent_toolset_20260401", "mcpServerName": "docs" }], "mcpServers": [server.clone()] }),
            Cel("mcpServerName is set on, and only on, mcp_toolset entries"),
        ),
        a(
            json!({ "tools": [{ "type": "custom", "name": "t", "description": "d" }] }),
            Cel("custom tools need name, description and inputSchema; other tool types take none of them"),
        ),
        a(
            json!({ "tools": [{ "type": "custom", "name": "t", "description": "d", "inputSchema": { "type": "object" },
                                "configs": [{ "name": "x" }] }] }),
            Cel("custom tools take no defaultConfig or configs"),
        ),
        a(
            json!({ "tools": [custom("a b")] }),
            Cel("custom tool names are 1 to 128 characters of [A-Za-z0-9_-]"),
        ),
        a(
            json!({ "tools": [{ "type": "agent_toolset_20260401", "configs": [{ "name": "" }] }] }),
            Cel("tool names are 1 to 128 characters"),
        ),
        a(
            json!({ "tools": [mcp("").0], "mcpServers": [mcp("").1] }),
            Cel("MCP server names are 1 to 255 characters"),
        ),
        a(
            json!({ "tools": [tool.clone()], "mcpServers": [{ "name": "docs", "url": "ftp://x" }] }),
            Cel("MCP server url must be an http(s) URL"),
        ),
        a(
            json!({ "skills": [{ "type": "anthropic", "skillId": "" }] }),
            Cel("skillId must not be empty"),
        ),
        a(
            json!({ "skills": [{ "type": "configMap", "skillId": "cm", "version": "1" }] }),
            Cel("a configMap skill has no version: its ConfigMap is read as it is"),
        ),
        a(
            json!({ "skills": [{ "type": "gitRepository", "skillId": "git@host:o/r.git" }] }),
            Cel("a gitRepository skill's skillId is the repository's http(s) URL"),
        ),
        a(
            json!({ "skills": [{ "type": "custom", "skillId": "skill_01", "path": "x" }] }),
            Cel("path and authorizationSecretRef belong to gitRepository skills"),
        ),
        a(
            json!({ "skills": [{ "type": "gitRepository", "skillId": "https://h/r.git", "path": "../x" }] }),
            Cel("path is relative to the repository's root and has no '..'"),
        ),
        a(
            budget(json!({ "maxCost": { "amount": "-1" } })),
            Cel("amount must be a non-negative decimal number of cents, such as \"2500\" or \"0.42\""),
        ),
        a(
            budget(json!({ "maxCost": { "amount": "1", "currency": "EUR" } })),
            Cel("currency must be USD"),
        ),
        a(budget(json!({})), Cel("a budget needs maxCost or maxTokens")),
        a(
            budget(json!({ "maxTokens": 0 })),
            Cel("maxTokens must be at least 1"),
        ),
        a(
            json!({ "tools": [{ "type": "agent_toolset_20260401", "configs": [{ "name": "rm" }] }] }),
            RustOnly,
        ),
        a(
            json!({ "tools": [{ "type": "custom", "name": "t", "description": "d", "inputSchema": { "type": "string" } }] }),
            RustOnly,
        ),
        a(json!({ "tools": [custom("t"), custom("t")] }), RustOnly),
        a(
            json!({ "tools": [{ "type": "agent_toolset_20260401" }, { "type": "agent_toolset_20260401" }] }),
            RustOnly,
        ),
    ]
}

fn environment_cases() -> Vec<Case> {
    use Breaks::*;
    let e = |spec, breaks| case(Kind::Environment, spec, breaks);
    let sandbox = |s: Value| json!({ "sandbox": s });
    vec![
        e(json!({}), Nothing),
        e(
            json!({
                "name": "python", "metadata": { "k": "v" },
                "config": { "networking": { "type": "limited", "allowedHosts": ["*.pypi.org", "api.example.com:8443"],
                                            "allowPackageManagers": true },
                            "packages": { "pip": ["pandas==2.2"], "apt": ["git"] } },
                "sandbox": { "image": "python:3.12", "imagePullPolicy": "IfNotPresent", "env": [{ "name": "PIP_INDEX_URL", "value": "x" }],
                             "warmPool": 2, "idleTimeout": "1h30m", "workspace": { "type": "persistent", "size": "5Gi" } },
            }),
            Nothing,
        ),
        e(json!({ "name": "" }), Cel("name must be 1 to 256 characters")),
        e(
            json!({ "metadata": { "k": "v".repeat(513) } }),
            Cel(METADATA_RULE_MESSAGE),
        ),
        e(
            json!({ "config": { "networking": { "type": "limited" }, "packages": { "apt": ["git"] } } }),
            Cel("packages under limited networking require networking.allowPackageManagers: true"),
        ),
        e(
            json!({ "config": { "networking": { "type": "unrestricted", "allowedHosts": ["a.example.com"] } } }),
            Cel("allowedHosts, allowMcpServers and allowPackageManagers apply only to limited networking"),
        ),
        e(
            json!({ "config": { "networking": { "type": "limited", "allowedHosts": ["ok.example.com", "-bad"] } } }),
            Cel("allowedHosts entries must be host names, optionally with a leading *. and a :port"),
        ),
        e(
            json!({ "config": { "packages": { "pip": ["-e ."] } } }),
            Cel("package entries must be non-empty, without whitespace, and must not start with -"),
        ),
        e(sandbox(json!({ "image": "" })), Cel("image must not be empty")),
        e(
            sandbox(json!({ "imagePullPolicy": "Sometimes" })),
            Cel("imagePullPolicy must be Always, IfNotPresent or Never"),
        ),
        e(
            sandbox(json!({ "env": [{ "name": "CORRAL_TOKEN", "value": "x" }] })),
            Cel("env names starting with CORRAL_ are reserved"),
        ),
        e(
            sandbox(json!({ "env": [{ "name": "1X", "value": "x" }] })),
            Cel("env names are letters, digits and underscores, not starting with a digit"),
        ),
        e(
            sandbox(json!({ "warmPool": 101 })),
            Cel("warmPool must be between 0 and 100"),
        ),
        e(
            sandbox(json!({ "idleTimeout": "10 minutes" })),
            Cel("idleTimeout must be a duration such as 90s, 15m or 1h30m"),
        ),
        e(
            sandbox(json!({ "workspace": { "type": "ephemeral", "size": "1Gi" } })),
            Cel("size and storageClassName apply only to a persistent workspace"),
        ),
        e(
            sandbox(json!({ "workspace": { "type": "persistent", "size": "1G" } })),
            Cel("size must be a quantity such as 512Mi or 5Gi"),
        ),
        e(sandbox(json!({ "idleTimeout": "5s" })), RustOnly),
    ]
}

fn session_cases() -> Vec<Case> {
    use Breaks::*;
    let s = |patch, breaks| case(Kind::Session, session(patch), breaks);
    let update = |old: Value, new: Value, breaks| Case {
        kind: Kind::Session,
        spec: session(new),
        old: Some(session(old)),
        breaks,
    };
    let file = json!({ "type": "file", "fileId": "file-1" });
    let resources = |r: Value| json!({ "resources": [r] });
    let repository = json!({ "type": "github_repository", "url": "https://github.com/o/r",
        "checkout": { "type": "branch", "name": "main" }, "authorizationSecretRef": { "name": "s", "key": "k" },
        "mountPath": "/workspace/r" });
    vec![
        s(json!({}), Nothing),
        s(
            json!({
                "title": "t", "metadata": { "k": "v" }, "vaultRefs": [{ "name": "vlt-1" }],
                "budget": { "maxTokens": 10 },
            }),
            Nothing,
        ),
        s(resources(repository), Nothing),
        s(resources(file.clone()), Nothing),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/workspace/data/in.csv" })),
            Nothing,
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/etc/passwd" })),
            Cel(FILE_MOUNT_PATH_RULE),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/workspace/../etc/x" })),
            Cel(FILE_MOUNT_PATH_RULE),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/mnt/session/uploads/" })),
            Cel(FILE_MOUNT_PATH_RULE),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/workspace/." })),
            Cel(FILE_MOUNT_PATH_RULE),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/workspace/./x" })),
            Cel(FILE_MOUNT_PATH_RULE),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/mnt/session//x" })),
            Cel(FILE_MOUNT_PATH_RULE),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/workspace/.." })),
            Cel(FILE_MOUNT_PATH_RULE),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "file-1", "mountPath": "/workspace/.env" })),
            Nothing,
        ),
        update(
            json!({}),
            json!({ "title": "new", "metadata": { "k": "v" } }),
            Nothing,
        ),
        update(
            json!({}),
            json!({ "agent": { "name": "b", "version": 1 } }),
            Cel("agent is immutable"),
        ),
        update(
            json!({}),
            json!({ "environmentRef": { "name": "f" } }),
            Cel("environmentRef is immutable"),
        ),
        update(
            json!({ "vaultRefs": [{ "name": "v" }] }),
            json!({ "vaultRefs": [] }),
            Cel("vaultRefs is immutable"),
        ),
        s(
            json!({ "metadata": (0..17).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>() }),
            Cel(METADATA_RULE_MESSAGE),
        ),
        s(
            json!({ "resources": vec![file.clone(); 65] }),
            Cel("at most 64 resources"),
        ),
        s(
            json!({ "agent": { "name": "" } }),
            Cel("agent name must not be empty"),
        ),
        s(
            json!({ "agent": { "name": "a", "version": 0 } }),
            Cel("agent version must be at least 1"),
        ),
        s(
            json!({ "environmentRef": { "name": "" } }),
            Cel("name must not be empty"),
        ),
        s(
            resources(json!({ "type": "github_repository" })),
            Cel(
                "url, checkout and authorizationSecretRef apply only to github_repository resources, which need url",
            ),
        ),
        s(
            resources(json!({ "type": "file" })),
            Cel("fileId applies only to file resources, which need it"),
        ),
        s(
            resources(json!({ "type": "github_repository", "url": "ftp://x" })),
            Cel("repository url must be an http(s) URL"),
        ),
        s(
            resources(json!({ "type": "file", "fileId": "f", "mountPath": "data" })),
            Cel("mountPath must be absolute"),
        ),
        s(
            resources(
                json!({ "type": "github_repository", "url": "https://x", "checkout": { "type": "branch" } }),
            ),
            Cel("a branch checkout needs name, a commit checkout needs sha"),
        ),
        s(json!({ "vaultRefs": vec![json!({ "name": "v" }); 17] }), RustOnly),
    ]
}

#[test]
fn every_cel_rule_and_its_rust_twin_agree() {
    let cases: Vec<Case> = agent_cases()
        .into_iter()
        .chain(environment_cases())
        .chain(session_cases())
        .collect();
    let mut covered = BTreeSet::new();
    for c in &cases {
        let label = format!("{:?} {} (old {:?})", c.kind, c.spec, c.old);
        let label = label.chars().take(400).collect::<String>();
        let cel = cel(c.kind, &c.spec, c.old.as_ref());
        let rust = rust(c.kind, &c.spec, c.old.as_ref());
        match c.breaks {
            Breaks::Nothing => {
                assert!(cel.is_empty(), "CEL refused a valid spec: {cel:?}\n{label}");
                assert_eq!(rust, Ok(()), "Rust refused a valid spec\n{label}");
            }
            Breaks::RustOnly => {
                assert!(cel.is_empty(), "CEL refused: {cel:?}\n{label}");
                assert!(rust.is_err(), "Rust passed\n{label}");
            }
            Breaks::Cel(message) => {
                covered.insert(message.to_owned());
                let field = cel
                    .iter()
                    .find(|(_, m)| m == message)
                    .map(|(f, _)| f.clone())
                    .unwrap_or_else(|| panic!("CEL did not fail with {message:?}: {cel:?}\n{label}"));
                let err = rust.expect_err(&format!("Rust passed what CEL refused ({message:?})\n{label}"));
                assert_eq!(err.message, message, "{label}");
                assert!(
                    err.field.starts_with(&field),
                    "Rust names {} where CEL names {field}\n{label}",
                    err.field
                );
            }
        }
    }
    let mut rules = BTreeSet::new();
    cel_messages(&schema::<Agent>(), &mut rules);
    cel_messages(&schema::<Environment>(), &mut rules);
    cel_messages(&schema::<Session>(), &mut rules);
    let missing: Vec<_> = rules.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "CEL rules without a case (and maybe without a Rust twin): {missing:#?}"
    );
}
