//! A send whose Redis answer is lost (the connection drops after the append was sent, or before) is settled, not
//! failed: the gateway answers 200 and the message is stored exactly once, without the client sending an
//! `Idempotency-Key` (the official SDK sends none).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
};

use corral_gateway::{ratelimit::Limiter, state::Settings};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::harness::Gateway;

/// What the proxy does to the first request that contains its marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Forward the request, then drop the connection instead of forwarding Redis's answer.
    DropReply,
    /// Drop the connection without forwarding the request.
    DropRequest,
}

/// The bytes that trigger a fault, and the fault.
type Trigger = (Vec<u8>, Fault);

/// A TCP proxy in front of Redis that injects one fault when armed.
#[derive(Clone, Default)]
struct Proxy {
    upstream: Arc<OnceLock<String>>,
    armed: Arc<Mutex<Option<Trigger>>>,
    /// The bytes the fault swallowed (Redis's answer, or the request).
    swallowed: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Proxy {
    async fn start() -> (Self, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Self::default();
        let serving = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serving.clone().relay(client));
            }
        });
        (proxy, addr)
    }

    fn arm(&self, marker: &str, fault: Fault) {
        *self.swallowed.lock().unwrap() = None;
        *self.armed.lock().unwrap() = Some((marker.as_bytes().to_vec(), fault));
    }

    fn swallowed(&self) -> Option<Vec<u8>> {
        self.swallowed.lock().unwrap().clone()
    }

    /// The fault a chunk from the client triggers (disarming the proxy), if any.
    fn trigger(&self, chunk: &[u8]) -> Option<Fault> {
        let mut armed = self.armed.lock().unwrap();
        let (marker, fault) = armed.as_ref()?;
        let hit = chunk.windows(marker.len()).any(|w| w == marker.as_slice());
        let fault = *fault;
        hit.then(|| {
            *armed = None;
            fault
        })
    }

    async fn relay(self, mut client: TcpStream) {
        let upstream = self.upstream.get().expect("upstream set").clone();
        let Ok(mut server) = TcpStream::connect(upstream).await else {
            return;
        };
        let (mut from_client, mut from_server) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        let mut drop_answer = false;
        loop {
            tokio::select! {
                n = client.read(&mut from_client) => {
                    let Ok(n @ 1..) = n else { return };
                    let chunk = &from_client[..n];
                    match self.trigger(chunk) {
                        Some(Fault::DropRequest) => {
                            *self.swallowed.lock().unwrap() = Some(chunk.to_vec());
                            return;
                        }
                        Some(Fault::DropReply) => drop_answer = true,
                        None => {}
                    }
                    if server.write_all(chunk).await.is_err() {
                        return;
                    }
                }
                n = server.read(&mut from_server) => {
                    let Ok(n @ 1..) = n else { return };
                    if drop_answer {
                        *self.swallowed.lock().unwrap() = Some(from_server[..n].to_vec());
                        return;
                    }
                    if client.write_all(&from_server[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn message(text: &str) -> Value {
    json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": text }] }] })
}

/// How many stored user messages say `text`.
async fn stored(gw: &Gateway, t: &crate::harness::Tenant, path: &str, text: &str) -> usize {
    gw.get(path, t).await.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "user.message" && e["content"][0]["text"] == text)
        .count()
}

#[tokio::test]
async fn a_send_whose_redis_answer_is_lost_is_answered_200_and_stored_once() {
    let (proxy, addr) = Proxy::start().await;
    let upstream = proxy.upstream.clone();
    let gw = Gateway::start_via(Limiter::new(0, 0), Settings::default(), move |url| {
        let real = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        upstream.set(real).unwrap();
        format!("redis://{addr}/")
    })
    .await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    let path = format!("/v1/sessions/{session}/events");
    // The append script is in Redis's script cache from here on, so the armed request below is the append itself.
    gw.post(&path, &t, message("warm-up")).await.ok();

    // The append runs in Redis, and its answer never comes back.
    proxy.arm("lost-answer", Fault::DropReply);
    let echo = gw.post(&path, &t, message("lost-answer")).await.ok();
    let answer = proxy.swallowed().expect("the fault fired");
    assert_eq!(
        answer.first(),
        Some(&b'*'),
        "the script ran and answered: {answer:?}"
    );
    assert_eq!(echo["data"][0]["type"], "user.message");
    assert_eq!(echo["data"][0]["content"][0]["text"], "lost-answer");
    assert_eq!(stored(&gw, &t, &path, "lost-answer").await, 1);

    // The request never reaches Redis.
    proxy.arm("lost-request", Fault::DropRequest);
    let echo = gw.post(&path, &t, message("lost-request")).await.ok();
    assert!(proxy.swallowed().is_some(), "the fault fired");
    assert_eq!(echo["data"][0]["content"][0]["text"], "lost-request");
    assert_eq!(stored(&gw, &t, &path, "lost-request").await, 1);

    // One wake-up per message: the settled repeat enqueued none of its own.
    assert_eq!(gw.store.wakeup_queue(&t.ns).await.unwrap().depth, 3);
}
