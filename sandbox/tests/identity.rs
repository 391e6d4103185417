//! The client's identity check of the daemon, once per connection: calls on a checked connection do not ask again,
//! and when the address is taken over by another daemon (a pod IP reused), the new connection is refused before
//! the token is sent. A relay in front of the daemons plays the address and sees every byte the client sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{bash_ok, start};
use corral_sandbox_protocol::{ClientError, SandboxClient};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    task::JoinHandle,
};

/// Every chunk the client sent, with the daemon it went to.
type Sent = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

/// An address that leads to one daemon and can be moved to another, as a pod IP is reused: it counts the identity
/// checks sent through it, records what was sent to each daemon, and can cut its connections, as the end of a pod
/// does.
struct Address {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    identity_checks: Arc<AtomicUsize>,
    sent: Sent,
    relays: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Address {
    async fn leading_to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let identity_checks = Arc::new(AtomicUsize::new(0));
        let sent: Sent = Arc::default();
        let relays: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (t, checks, log, r) = (
            target.clone(),
            identity_checks.clone(),
            sent.clone(),
            relays.clone(),
        );
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let to = *t.lock().unwrap();
                let (checks, log) = (checks.clone(), log.clone());
                r.lock().unwrap().push(tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_daemon, mut to_daemon) = outbound.into_split();
                    let answers = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_daemon, &mut to_client).await;
                    });
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = from_client.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let chunk = &buf[..n];
                        let asks = chunk.windows(16).filter(|w| w == b"GET /v1/identity").count();
                        checks.fetch_add(asks, Ordering::SeqCst);
                        log.lock().unwrap().push((to, chunk.to_vec()));
                        if to_daemon.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                    answers.abort();
                }));
            }
        });
        Self {
            addr,
            target,
            identity_checks,
            sent,
            relays,
        }
    }

    /// The pod behind the address is gone (its connections end) and `target` answers there now.
    fn move_to(&self, target: SocketAddr) {
        for relay in self.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
        *self.target.lock().unwrap() = target;
    }

    fn identity_checks(&self) -> usize {
        self.identity_checks.load(Ordering::SeqCst)
    }

    /// Whether `needle` was ever sent to the daemon at `to`.
    fn sent_to(&self, to: SocketAddr, needle: &str) -> bool {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .any(|(at, bytes)| *at == to && bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    }
}

fn socket_addr(client: &SandboxClient) -> SocketAddr {
    client.base_url().trim_start_matches("http://").parse().unwrap()
}

#[tokio::test]
async fn the_identity_is_checked_once_per_connection_and_again_on_a_reused_address() {
    let (ours, other) = (start().await, start().await);
    let address = Address::leading_to(socket_addr(ours.client())).await;
    let client = SandboxClient::new(format!("http://{}", address.addr), ours.token()).unwrap();

    for i in 0..5 {
        bash_ok(&client, &format!("echo {i} >> calls")).await;
    }
    client.info().await.unwrap();
    assert_eq!(
        address.identity_checks(),
        1,
        "six calls share one checked connection, so the identity was asked once"
    );
    assert!(
        address.sent_to(socket_addr(ours.client()), ours.token()),
        "the calls carried the token"
    );
    assert_eq!(
        std::fs::read_to_string(ours.workspace().join("calls")).unwrap(),
        "0\n1\n2\n3\n4\n"
    );

    // Another sandbox's daemon takes the address over.
    address.move_to(socket_addr(other.client()));
    // The end of the old pod's connections reaches the client first, as a pod's end does.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let marker = other.workspace().join("ran");
    let outcome = client
        .execute(
            "bash",
            json!({"command": format!("touch {}", marker.display())}),
            Duration::from_secs(5),
        )
        .await;
    match outcome {
        Err(ClientError::Refused { message, .. }) => {
            assert!(message.contains("not this sandbox's"), "{message}");
        }
        other => panic!("expected a refusal before the token was sent, got {other:?}"),
    }
    assert!(
        !marker.exists(),
        "the daemon that took the address over ran the call"
    );
    assert_eq!(address.identity_checks(), 2, "the new connection was checked");
    assert!(
        !address.sent_to(socket_addr(other.client()), ours.token()),
        "the daemon that took the address over never received the token"
    );

    // The same address leading back to the right daemon works again, on a new connection.
    address.move_to(socket_addr(ours.client()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    bash_ok(&client, "echo back >> calls").await;
    assert!(
        std::fs::read_to_string(ours.workspace().join("calls"))
            .unwrap()
            .ends_with("back\n")
    );
}
