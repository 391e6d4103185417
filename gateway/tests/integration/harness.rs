//! A real gateway for the tests: a real kube-apiserver (the light mode of `make apiserver-up`, kubeconfig in
//! `e2e/.state/kubeconfig` or `$KUBECONFIG`), a real redis-server, the gateway served on a loopback port, and
//! tenants made with the `create-key` code path.

use std::time::Duration;

use corral_gateway::{admin, auth::KeyIndex, ratelimit::Limiter, server, state::Settings};
use corral_runtime::health::Readiness;
use corral_session::testing::RedisServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    config::{KubeConfigOptions, Kubeconfig},
};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

/// A running gateway and what it talks to.
pub struct Gateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Base URL of its metrics port (`/metrics`).
    pub metrics_url: String,
    /// The Kubernetes client.
    pub kube: Client,
    /// The session log store (on the same Redis).
    pub store: corral_session::Store,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The session log's redis-server (take it to stop the server).
    pub redis: Option<RedisServer>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A namespace and a key for it.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The namespace.
    pub ns: String,
    /// The API key.
    pub key: String,
}

/// A response, read whole.
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// JSON body (Null when not JSON).
    pub body: Value,
}

impl Reply {
    /// Asserts the API's error envelope with this status and error type, and returns the message.
    pub fn error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["type"], "error", "{}", self.body);
        assert_eq!(self.body["error"]["type"], kind, "{}", self.body);
        let id = self.headers["request-id"].to_str().expect("request-id header");
        assert_eq!(
            self.body["request_id"], id,
            "the body names the request-id header's id"
        );
        self.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Asserts 200 and returns the body.
    pub fn ok(self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert!(self.headers.contains_key("request-id"));
        self.body
    }
}

/// A Kubernetes client from `$KUBECONFIG` or the light mode's kubeconfig.
pub async fn kube_client() -> Client {
    let path = std::env::var("KUBECONFIG")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/.state/kubeconfig").to_owned());
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("no kubeconfig at {path} ({e}): run hack/gateway-it.sh"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    let client = Client::try_from(config).expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        "agents.corral.dev",
        "environments.corral.dev",
        "sessions.corral.dev",
    ] {
        assert!(
            crds.get_opt(crd).await.expect("the API server answers").is_some(),
            "CRD {crd} is missing: kubectl apply --server-side -f crds/"
        );
    }
    client
}

impl Gateway {
    /// A gateway without rate limits and with 15 s keep-alives.
    pub async fn start() -> Self {
        Self::start_with(Limiter::new(0, 0), Duration::from_secs(15)).await
    }

    /// A gateway with the given limits and keep-alive interval.
    pub async fn start_with(limiter: Limiter, keep_alive: Duration) -> Self {
        Self::start_with_settings(
            limiter,
            Settings {
                keep_alive,
                ..Settings::default()
            },
        )
        .await
    }

    /// A gateway with the given limits and settings.
    pub async fn start_with_settings(limiter: Limiter, settings: Settings) -> Self {
        Self::start_full(limiter, settings, corral_session::Config::default(), |url| url).await
    }

    /// A gateway with the given limits, settings and session log settings (its caps).
    pub async fn start_with_log(limiter: Limiter, settings: Settings, log: corral_session::Config) -> Self {
        Self::start_full(limiter, settings, log, |url| url).await
    }

    /// A gateway whose own Redis connection goes to `via(<the redis-server's URL>)` (for example a proxy that
    /// injects faults), while [`Gateway::store`] talks to the redis-server directly.
    pub async fn start_via(limiter: Limiter, settings: Settings, via: impl FnOnce(String) -> String) -> Self {
        Self::start_full(limiter, settings, corral_session::Config::default(), via).await
    }

    /// A gateway with the given limits, settings, session log settings, and its Redis connection through `via`.
    async fn start_full(
        limiter: Limiter,
        settings: Settings,
        log: corral_session::Config,
        via: impl FnOnce(String) -> String,
    ) -> Self {
        let kube = kube_client().await;
        let redis = RedisServer::start().expect("redis-server");
        let store = corral_session::Store::connect(&redis.url(), log.clone())
            .await
            .expect("redis");
        let gateway_store = corral_session::Store::connect(&via(redis.url()), log)
            .await
            .expect("redis");
        let (keys, watch) = KeyIndex::watch(kube.clone());
        tokio::spawn(watch);
        assert!(keys.ready().await, "the key reflector syncs");
        let state = server::state(kube.clone(), gateway_store, keys, limiter, settings);
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let metrics_url = format!("http://{}", metrics_listener.local_addr().expect("addr"));
        let metrics = server::metrics_server(&state, Readiness::default()).router();
        tokio::spawn(async move { axum::serve(metrics_listener, metrics).await });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let readiness = Readiness::default();
        readiness.set(true);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, state, readiness, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            metrics_url,
            kube,
            store,
            http: reqwest::Client::new(),
            redis: Some(redis),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A fresh namespace with a new key, usable once the gateway's reflector saw it.
    pub async fn tenant(&self) -> Tenant {
        let ns = format!("gw-it-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let (key, _) = admin::create_key(&self.kube, &ns, None)
            .await
            .expect("create-key");
        let tenant = Tenant { ns, key };
        for _ in 0..200 {
            if self
                .call(Method::GET, "/v1/agents", Some(&tenant), None)
                .await
                .status
                != StatusCode::UNAUTHORIZED
            {
                return tenant;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the new key never became valid");
    }

    /// Sends a request with the tenant's key as `Authorization: Bearer`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&Tenant>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = tenant {
            req = req.bearer_auth(&t.key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        Self::read(res).await
    }

    /// Reads a response whole.
    pub async fn read(res: reqwest::Response) -> Reply {
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET`.
    pub async fn get(&self, path: &str, t: &Tenant) -> Reply {
        self.call(Method::GET, path, Some(t), None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, t: &Tenant, body: Value) -> Reply {
        self.call(Method::POST, path, Some(t), Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str, t: &Tenant) -> Reply {
        self.call(Method::DELETE, path, Some(t), None).await
    }

    /// Creates an agent, an environment and a session; returns their ids.
    pub async fn session(&self, t: &Tenant) -> (String, String, String) {
        let agent = self
            .post(
                "/v1/agents",
                t,
                serde_json::json!({ "name": "a", "model": "claude-sonnet-4-5" }),
            )
            .await
            .ok();
        let env = self
            .post("/v1/environments", t, serde_json::json!({ "name": "e" }))
            .await
            .ok();
        let session = self
            .post(
                "/v1/sessions",
                t,
                serde_json::json!({ "agent": agent["id"], "environment_id": env["id"] }),
            )
            .await
            .ok();
        (
            agent["id"].as_str().unwrap_or_default().to_owned(),
            env["id"].as_str().unwrap_or_default().to_owned(),
            session["id"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Asks the server to stop and waits until it has.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
