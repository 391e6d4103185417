//! `file` session resources and `/v1/sessions/{id}/resources` against a real API server, Redis and S3 server: a
//! session created with a file, the file added and removed on the live session (kept in the Session's spec), the
//! SDK's shapes and errors; and the internal route harnesses fetch the bytes from, which no API key and no foreign
//! token opens.

use corral_api::Session;
use corral_gateway::{ratelimit::Limiter, state::Settings};
use kube::Api;
use serde_json::{Value, json};

use crate::{
    files::upload,
    harness::{Gateway, Tenant},
    s3::S3Server,
};

/// The namespace the test's "harnesses" run in.
const SYSTEM: &str = "corral-it-harnesses";

/// Creates namespace `name` unless it exists.
pub(crate) async fn ensure_namespace(gw: &Gateway, name: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(gw.kube.clone());
    if namespaces.get_opt(name).await.unwrap().is_none() {
        let ns = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        let created = namespaces.create(&kube::api::PostParams::default(), &ns).await;
        assert!(
            created.is_ok() || namespaces.get_opt(name).await.unwrap().is_some(),
            "{created:?}"
        );
    }
}

async fn gateway(s3: &S3Server) -> Gateway {
    let settings = Settings {
        files: Some(s3.storage(1 << 20)),
        harness_namespace: Some(SYSTEM.into()),
        ..Settings::default()
    };
    Gateway::start_with_settings(Limiter::new(0, 0), settings).await
}

/// A new agent and environment of tenant `t`; answers the body of a session create for them with `resources`.
async fn session_body(gw: &Gateway, t: &Tenant) -> impl Fn(Value) -> Value + use<> {
    let agent = gw
        .post(
            "/v1/agents",
            t,
            json!({ "name": "a", "model": "claude-sonnet-4-5" }),
        )
        .await
        .ok();
    let env = gw.post("/v1/environments", t, json!({ "name": "e" })).await.ok();
    move |resources| json!({ "agent": agent["id"], "environment_id": env["id"], "resources": resources })
}

#[tokio::test]
async fn file_resources_are_created_listed_added_and_deleted() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3).await;
    let t = gw.tenant().await;
    let stranger = gw.tenant().await;
    let first = upload(&gw, &t, "a.txt", b"alpha".to_vec(), None).await.ok();
    let second = upload(&gw, &t, "b.txt", b"beta".to_vec(), None).await.ok();
    let foreign = upload(&gw, &stranger, "c.txt", b"gamma".to_vec(), None)
        .await
        .ok();
    let (f1, f2) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    let create = session_body(&gw, &t).await;

    // Another tenant's file, or none at all, is a 404 naming the field; a path outside the sandbox's volumes a 400.
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            create(json!([{ "type": "file", "file_id": foreign["id"] }])),
        )
        .await
        .error(404, "not_found_error");
    assert!(msg.starts_with("resources[0].file_id:"), "{msg}");
    gw.post(
        "/v1/sessions",
        &t,
        create(json!([{ "type": "file", "file_id": "file_01JABCDEFGHJKMNPQRSTVWXYZ0" }])),
    )
    .await
    .error(404, "not_found_error");
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            create(json!([{ "type": "file", "file_id": f1, "mount_path": "/etc/passwd" }])),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("resources[0].mount_path:"), "{msg}");
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            create(json!([
                { "type": "github_repository", "url": "https://github.com/o/r", "mount_path": "/workspace/r" },
                { "type": "file", "file_id": f1, "mount_path": "/workspace/r" },
            ])),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("resources[1].mount_path:"), "{msg}");

    let session = gw
        .post(
            "/v1/sessions",
            &t,
            create(json!([{ "type": "file", "file_id": f1 }])),
        )
        .await
        .ok();
    let id = session["id"].as_str().unwrap();
    let listed = &session["resources"][0];
    assert_eq!(listed["type"], "file");
    assert_eq!(listed["file_id"], f1);
    assert_eq!(listed["mount_path"], format!("/mnt/session/uploads/{f1}"));
    let r1 = listed["id"].as_str().unwrap().to_owned();
    assert!(r1.starts_with("sesrsc_"), "{r1}");
    for f in ["created_at", "updated_at"] {
        assert!(listed[f].is_string(), "{f}");
    }

    let path = format!("/v1/sessions/{id}/resources");
    let list = gw.get(&path, &t).await.ok();
    assert_eq!(list["data"], json!([listed]));
    assert_eq!(list["next_page"], Value::Null);
    assert_eq!(gw.get(&format!("{path}/{r1}"), &t).await.ok(), *listed);

    // Added on the live session: kept in the Session's spec, where the harness (and a GitOps user) reads it.
    let added = gw
        .post(
            &path,
            &t,
            json!({ "type": "file", "file_id": f2, "mount_path": "/workspace/data/b.txt" }),
        )
        .await
        .ok();
    assert_eq!(added["mount_path"], "/workspace/data/b.txt");
    let r2 = added["id"].as_str().unwrap().to_owned();
    let sessions: Api<Session> = Api::namespaced(crate::harness::kube_client().await, &t.ns);
    let stored = sessions.get(id).await.unwrap();
    assert_eq!(stored.spec.resources.len(), 2);
    assert_eq!(stored.spec.resources[1].file_id.as_deref(), Some(f2));
    assert_eq!(
        stored.spec.resources[1].mount_path.as_deref(),
        Some("/workspace/data/b.txt")
    );
    // Recorded before the answer: a harness whose watch-fed copy of the Session is older reads it afresh.
    assert_eq!(
        gw.store.session(&t.ns, id).spec_generation().await.unwrap(),
        stored.metadata.generation.unwrap(),
        "the spec generation the gateway answered for is in Redis"
    );

    let page = gw.get(&format!("{path}?limit=1"), &t).await.ok();
    assert_eq!(page["data"][0]["id"], r1.as_str());
    let next = page["next_page"].as_str().expect("a second page");
    let page = gw.get(&format!("{path}?limit=1&page={next}"), &t).await.ok();
    assert_eq!(page["data"][0]["id"], r2.as_str());
    assert_eq!(page["next_page"], Value::Null);

    // The errors the SDK can meet.
    let msg = gw
        .post(
            &path,
            &t,
            json!({ "type": "file", "file_id": f2, "mount_path": "/workspace/data/b.txt" }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("mount_path:"), "{msg}");
    let msg = gw
        .post(&path, &t, json!({ "type": "file", "file_id": foreign["id"] }))
        .await
        .error(404, "not_found_error");
    assert!(msg.starts_with("file_id:"), "{msg}");
    let msg = gw
        .post(
            &path,
            &t,
            json!({ "type": "file", "file_id": f2, "colour": "red" }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.contains("colour"), "{msg}");
    let msg = gw
        .post(
            &path,
            &t,
            json!({ "type": "github_repository", "url": "https://github.com/o/r" }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("type:"), "{msg}");
    let msg = gw
        .post(
            &format!("{path}/{r1}"),
            &t,
            json!({ "authorization_token": "tok" }),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("authorization_token:"), "{msg}");
    gw.get(&format!("{path}/sesrsc_000000000000000000000000"), &t)
        .await
        .error(404, "not_found_error");
    gw.get(&path, &stranger).await.error(404, "not_found_error");
    gw.delete(&format!("{path}/{r2}"), &stranger)
        .await
        .error(404, "not_found_error");

    let deleted = gw.delete(&format!("{path}/{r2}"), &t).await.ok();
    assert_eq!(deleted, json!({ "id": r2, "type": "session_resource_deleted" }));
    assert_eq!(sessions.get(id).await.unwrap().spec.resources.len(), 1);
    gw.delete(&format!("{path}/{r2}"), &t)
        .await
        .error(404, "not_found_error");
    let left = gw.get(&path, &t).await.ok();
    let left = left["data"].as_array().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], r1.as_str(), "the session's first file stays");
    assert!(
        left[0]["updated_at"].as_str() >= listed["updated_at"].as_str(),
        "updated_at follows the session's changes"
    );
}

#[tokio::test]
async fn the_harness_route_opens_for_no_api_key_and_no_foreign_token() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3).await;
    let t = gw.tenant().await;
    let file = upload(&gw, &t, "a.txt", b"alpha".to_vec(), None).await.ok();
    let url = format!(
        "{}/internal/v1/namespaces/{}/files/{}/content",
        gw.url,
        t.ns,
        file["id"].as_str().unwrap()
    );
    let status = |res: reqwest::Response| res.status().as_u16();
    assert_eq!(status(gw.http.get(&url).send().await.unwrap()), 401);
    // A tenant's API key is not a harness's identity.
    let res = gw.http.get(&url).bearer_auth(&t.key).send().await.unwrap();
    assert_eq!(status(res), 403);

    ensure_namespace(&gw, SYSTEM).await;
    let own = corral_api::labels::harness_name(&t.ns);
    let token = |name: String, audience: Option<&'static str>| {
        let gw = &gw;
        async move { crate::approvals::service_account_token(gw, SYSTEM, &name, audience).await }
    };
    // The tenant's own harness, with a token for the gateway: the bytes.
    let res = gw
        .http
        .get(&url)
        .bearer_auth(token(own.clone(), Some("corral-gateway")).await)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"alpha");
    // The same account's token for the API server is not one for the gateway.
    let res = gw
        .http
        .get(&url)
        .bearer_auth(token(own, None).await)
        .send()
        .await
        .unwrap();
    assert_eq!(status(res), 403);
    // Another tenant's harness reads nothing of this tenant.
    let other = corral_api::labels::harness_name("some-other-tenant");
    let res = gw
        .http
        .get(&url)
        .bearer_auth(token(other, Some("corral-gateway")).await)
        .send()
        .await
        .unwrap();
    assert_eq!(status(res), 403);
}

#[tokio::test]
async fn file_resources_must_fit_in_the_sandbox_disk_counting_each_mount_path() {
    let s3 = S3Server::start().await;
    // A sandbox disk of 100 KiB (102400 bytes), as the chart's sandbox.storage.limit sets it for gateway and operator.
    let settings = Settings {
        files: Some(s3.storage(1 << 20)),
        sandbox_disk_limit: "100Ki".into(),
        ..Settings::default()
    };
    let gw = Gateway::start_with_settings(Limiter::new(0, 0), settings).await;
    let t = gw.tenant().await;
    let big = upload(&gw, &t, "big.bin", vec![1; 60_000], None).await.ok();
    let rest = upload(&gw, &t, "rest.bin", vec![2; 42_400], None).await.ok();
    let one = upload(&gw, &t, "one.bin", vec![3; 1], None).await.ok();
    let (big, rest, one) = (&big["id"], &rest["id"], &one["id"]);
    let create = session_body(&gw, &t).await;

    // One byte over: refused up front, naming the field and the limit, and no session is made.
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            create(json!([
                { "type": "file", "file_id": big },
                { "type": "file", "file_id": rest },
                { "type": "file", "file_id": one },
            ])),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.starts_with("resources:"), "{msg}");
    assert!(msg.contains("102401 bytes") && msg.contains("100Ki"), "{msg}");
    // One file at two paths is two copies in the sandbox, so it counts twice.
    let msg = gw
        .post(
            "/v1/sessions",
            &t,
            create(json!([
                { "type": "file", "file_id": big },
                { "type": "file", "file_id": big, "mount_path": "/workspace/big-copy.bin" },
            ])),
        )
        .await
        .error(400, "invalid_request_error");
    assert!(msg.contains("120000 bytes"), "{msg}");
    let listed = gw.get("/v1/sessions", &t).await.ok();
    assert_eq!(listed["data"], json!([]), "no session was made");

    // Exactly the limit: accepted.
    let session = gw
        .post(
            "/v1/sessions",
            &t,
            create(json!([{ "type": "file", "file_id": big }, { "type": "file", "file_id": rest }])),
        )
        .await
        .ok();
    let path = format!("/v1/sessions/{}/resources", session["id"].as_str().unwrap());
    // Full: one more byte added on the live session is refused, and the session keeps its two files.
    let msg = gw
        .post(&path, &t, json!({ "type": "file", "file_id": one }))
        .await
        .error(400, "invalid_request_error");
    assert!(
        msg.starts_with("resources:") && msg.contains("102401 bytes"),
        "{msg}"
    );
    let kept = gw.get(&path, &t).await.ok();
    assert_eq!(kept["data"].as_array().unwrap().len(), 2);

    // Room made by removing a file is room to add one.
    let rest_id = kept["data"][1]["id"].as_str().unwrap().to_owned();
    gw.delete(&format!("{path}/{rest_id}"), &t).await.ok();
    gw.post(&path, &t, json!({ "type": "file", "file_id": one }))
        .await
        .ok();
    gw.post(
        &path,
        &t,
        json!({ "type": "file", "file_id": rest, "mount_path": "/workspace/rest.bin" }),
    )
    .await
    .error(400, "invalid_request_error");
}

#[tokio::test]
async fn a_repository_secret_that_is_missing_or_not_a_repository_token_is_refused_up_front() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3).await;
    let t = gw.tenant().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(gw.kube.clone(), &t.ns);
    let secret = |name: &str, labelled: bool| {
        let labels = if labelled {
            json!({ corral_api::model_key::CREDENTIAL_LABEL: corral_api::repository::CREDENTIAL_REPOSITORY })
        } else {
            json!({})
        };
        serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(json!({
            "metadata": { "name": name, "labels": labels },
            "stringData": { "token": "ghp_x" },
        }))
        .unwrap()
    };
    for (name, labelled) in [("db-password", false), ("repo-token", true)] {
        secrets
            .create(&kube::api::PostParams::default(), &secret(name, labelled))
            .await
            .unwrap();
    }
    let session_with = session_body(&gw, &t).await;
    let create = |name: &str, key: &str| {
        session_with(json!([
            { "type": "github_repository", "url": "https://git.example/o/public" },
            { "type": "github_repository", "url": "https://git.example/o/r",
              "authorization_secret_ref": { "name": name, "key": key } },
        ]))
    };
    // A missing Secret, any other Secret of the namespace (a database password: never sent to the repository's
    // host) and a Secret without the key read the same, so an API key cannot probe what the namespace holds.
    for (name, key) in [
        ("nowhere", "token"),
        ("db-password", "token"),
        ("repo-token", "other"),
    ] {
        let msg = gw
            .post("/v1/sessions", &t, create(name, key))
            .await
            .error(400, "invalid_request_error");
        assert_eq!(
            msg,
            format!(
                "resources[1].authorization_secret_ref: Secret {name:?} (key {key:?}) is not usable as a repository \
                 token: it must exist in this namespace, hold the key, and carry the label corral.dev/credential=repository"
            )
        );
    }
    let listed = gw.get("/v1/sessions", &t).await.ok();
    assert_eq!(listed["data"], json!([]), "no session was made");
    let session = gw
        .post("/v1/sessions", &t, create("repo-token", "token"))
        .await
        .ok();
    assert_eq!(
        session["resources"][1]["authorization_secret_ref"],
        json!({ "name": "repo-token", "key": "token" })
    );
}

#[tokio::test]
async fn a_repository_token_is_rotated_where_the_resource_reads_it() {
    let s3 = S3Server::start().await;
    let gw = gateway(&s3).await;
    let t = gw.tenant().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(gw.kube.clone(), &t.ns);
    let user_secret = serde_json::from_value(json!({
        "metadata": { "name": "gitops-token", "labels": {
            corral_api::model_key::CREDENTIAL_LABEL: corral_api::repository::CREDENTIAL_REPOSITORY } },
        "stringData": { "token": "ghp_gitops" },
    }))
    .unwrap();
    secrets
        .create(&kube::api::PostParams::default(), &user_secret)
        .await
        .unwrap();
    let session_with = session_body(&gw, &t).await;
    let session = gw
        .post(
            "/v1/sessions",
            &t,
            session_with(json!([
                { "type": "github_repository", "url": "https://git.example/o/private", "authorization_token": "ghp_old" },
                { "type": "github_repository", "url": "https://git.example/o/public" },
                { "type": "github_repository", "url": "https://git.example/o/gitops",
                  "authorization_secret_ref": { "name": "gitops-token", "key": "token" } },
            ])),
        )
        .await
        .ok();
    let id = session["id"].as_str().unwrap();
    let rid = |i: usize| session["resources"][i]["id"].as_str().unwrap().to_owned();
    let path = |i: usize| format!("/v1/sessions/{id}/resources/{}", rid(i));
    let token_in = |name: String| {
        let secrets = secrets.clone();
        async move {
            let secret = secrets.get(&name).await.unwrap();
            String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap()
        }
    };
    assert_eq!(token_in(format!("{id}-repo-0")).await, "ghp_old");

    // Rotated in the Secret the gateway wrote for it; the answer is the resource, without the token.
    let updated = gw
        .post(&path(0), &t, json!({ "authorization_token": "ghp_new" }))
        .await
        .ok();
    assert_eq!(updated["id"], rid(0).as_str());
    assert_eq!(updated["type"], "github_repository");
    assert!(!updated.to_string().contains("ghp_"), "{updated}");
    assert_eq!(token_in(format!("{id}-repo-0")).await, "ghp_new");

    // A repository given no token before gets a Secret of its own, which the Session's spec then names.
    gw.post(&path(1), &t, json!({ "authorization_token": "ghp_first" }))
        .await
        .ok();
    let sessions: Api<Session> = Api::namespaced(gw.kube.clone(), &t.ns);
    let stored = sessions.get(id).await.unwrap();
    let reference = stored.spec.resources[1]
        .authorization_secret_ref
        .clone()
        .expect("the spec names the new Secret");
    assert_eq!(token_in(reference.name.clone()).await, "ghp_first");
    assert_eq!(
        corral_api::repository::token_refusal(&secrets.get(&reference.name).await.unwrap(), id),
        None,
        "a token this session may use"
    );

    // A GitOps user's Secret is theirs to change; malformed tokens and a missing token are refused.
    let msg = gw
        .post(&path(2), &t, json!({ "authorization_token": "ghp_x" }))
        .await
        .error(400, "invalid_request_error");
    assert!(
        msg.starts_with("authorization_token:") && msg.contains("gitops-token"),
        "{msg}"
    );
    assert_eq!(token_in("gitops-token".into()).await, "ghp_gitops");
    // Gone, it is still theirs: the spec keeps naming it (a GitOps sync would undo a rewrite).
    secrets.delete("gitops-token", &Default::default()).await.unwrap();
    let msg = gw
        .post(&path(2), &t, json!({ "authorization_token": "ghp_x" }))
        .await
        .error(400, "invalid_request_error");
    assert!(
        msg.contains("gitops-token") && msg.contains("does not exist"),
        "{msg}"
    );
    let stored = sessions.get(id).await.unwrap();
    assert_eq!(
        stored.spec.resources[2]
            .authorization_secret_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("gitops-token")
    );
    for bad in [
        json!({ "authorization_token": "" }),
        json!({ "authorization_token": "a b" }),
        json!({}),
    ] {
        let msg = gw
            .post(&path(0), &t, bad)
            .await
            .error(400, "invalid_request_error");
        assert!(msg.starts_with("authorization_token:"), "{msg}");
    }
    assert_eq!(token_in(format!("{id}-repo-0")).await, "ghp_new");
}
