//! The client's identity check of the daemon, once per connection: calls on a checked connection do not ask again,
//! and when the address is taken over by another daemon (a pod IP reused), the new connection is refused before
//! the token is sent.

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
use tokio::{net::TcpListener, task::JoinHandle};

/// An address that leads to one daemon and can be moved to another, as a pod IP is reused: it counts the
/// connections made to it and can cut them, as the end of a pod does.
struct Address {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    connections: Arc<AtomicUsize>,
    relays: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Address {
    async fn leading_to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let connections = Arc::new(AtomicUsize::new(0));
        let relays: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (t, c, r) = (target.clone(), connections.clone(), relays.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let to = *t.lock().unwrap();
                r.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self {
            addr,
            target,
            connections,
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

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
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
        address.connections(),
        1,
        "six calls share one checked connection, so the identity was asked once"
    );
    assert_eq!(std::fs::read_to_string(ours.workspace().join("calls")).unwrap(), "0\n1\n2\n3\n4\n");

    // Another sandbox's daemon takes the address over.
    address.move_to(socket_addr(other.client()));
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
    assert!(!marker.exists(), "the daemon that took the address over ran the call");
    assert!(address.connections() >= 2, "the call needed a new connection");

    // The same address leading back to the right daemon works again, on a new connection.
    address.move_to(socket_addr(ours.client()));
    bash_ok(&client, "echo back >> calls").await;
    assert!(
        std::fs::read_to_string(ours.workspace().join("calls"))
            .unwrap()
            .ends_with("back\n")
    );
}
