//! The proxy's limits under abuse, on loopback: a client beyond the connection cap (in all, or of one sandbox) is
//! told so and the others carry on; a slow request head gets `408`; a silent tunnel is closed; a destination that
//! never answers the connect gets `504`. Each test also shows the permitted path working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    client, connect, echo, echoes, limits, opening, proxy_auth, read_head, read_to_close, sandbox, start,
    upstream,
};
use corral_egress::{
    limits::Limits,
    metrics::{Limit, Metrics},
};
use tokio::{io::AsyncWriteExt, net::TcpStream};

fn open_to(port: u16) -> serde_json::Value {
    serde_json::json!({"type": "limited", "allowedHosts": [format!("127.0.0.1:{port}")]})
}

/// Waits until the proxy counts `open` client connections.
async fn until_open(metrics: &Metrics, open: i64) {
    for _ in 0..200 {
        if metrics.open_connections() == open {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} connections open, not {open}", metrics.open_connections());
}

/// A proxy with `cap` set to 2 (by `set`): two idle connections fill it, a third gets `status` and `message`
/// and is counted under `limit`; once one of the two closes, a request is served again.
async fn two_idle_connections_fill(set: fn(&mut Limits), limit: Limit, status: &str, message: &str) {
    let up = upstream().await;
    let proxy = start(vec![("sbx", sandbox(open_to(up.port())))], |p| {
        p.walls = opening(&["127.0.0.1"]);
        p.limits = limits(set);
    })
    .await;
    let mut hogs = vec![
        TcpStream::connect(proxy.addr).await.unwrap(),
        TcpStream::connect(proxy.addr).await.unwrap(),
    ];
    until_open(&proxy.metrics, 2).await;
    let mut third = TcpStream::connect(proxy.addr).await.unwrap();
    let answer = read_to_close(&mut third).await;
    assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
    assert!(answer.contains(message), "{answer}");
    assert_eq!(proxy.metrics.limited_count(limit), 1);

    hogs.pop();
    until_open(&proxy.metrics, 1).await;
    let reply = client(proxy.addr, "sbx", None)
        .get(format!("http://{up}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "a freed place serves again");
}

#[tokio::test]
async fn beyond_the_connection_cap_a_client_gets_503_and_a_freed_slot_serves_again() {
    two_idle_connections_fill(
        |l| l.max_connections = 2,
        Limit::Connections,
        "503",
        "the proxy has 2 connections open, its limit",
    )
    .await;
}

#[tokio::test]
async fn connections_that_never_send_a_request_count_against_their_source_address() {
    two_idle_connections_fill(
        |l| l.max_connections_per_source = 2,
        Limit::SourceConnections,
        "429",
        "127.0.0.1 has 2 connections open through the proxy, its limit",
    )
    .await;
}

#[tokio::test]
async fn one_sandbox_at_its_cap_gets_429_while_another_is_served() {
    let echo_addr = echo().await;
    let up = upstream().await;
    let both =
        serde_json::json!({"type": "limited", "allowedHosts": [echo_addr.to_string(), up.to_string()]});
    let proxy = start(
        vec![("greedy", sandbox(both.clone())), ("quiet", sandbox(both))],
        |p| {
            p.walls = opening(&["127.0.0.1"]);
            p.limits = limits(|l| l.max_connections_per_sandbox = 1);
        },
    )
    .await;
    // The greedy sandbox holds its one connection as a tunnel.
    let (status, mut tunnel) = connect(proxy.addr, "greedy", &echo_addr.to_string()).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let refused = client(proxy.addr, "greedy", None)
        .get(format!("http://{up}/more"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let reason = refused.text().await.unwrap();
    assert!(
        reason.contains("this sandbox has 1 connections open through the proxy, its limit"),
        "{reason}"
    );
    assert_eq!(proxy.metrics.limited_count(Limit::SandboxConnections), 1);

    let served = client(proxy.addr, "quiet", None)
        .get(format!("http://{up}/fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200, "another sandbox is not held back");
    assert!(echoes(&mut tunnel, b"still").await, "the tunnel still works");

    drop(tunnel);
    let mut served = false;
    for _ in 0..100 {
        let reply = client(proxy.addr, "greedy", None)
            .get(format!("http://{up}/again"))
            .send()
            .await
            .unwrap();
        if reply.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the closed tunnel freed the sandbox's slot");
}

#[tokio::test]
async fn a_slow_request_head_gets_408_and_a_prompt_one_is_served() {
    let up = upstream().await;
    let proxy = start(vec![("sbx", sandbox(open_to(up.port())))], |p| {
        p.walls = opening(&["127.0.0.1"]);
        p.limits = limits(|l| l.header_read_timeout = Duration::from_millis(300));
    })
    .await;
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(format!("GET http://{up}/slow HTTP/1.1\r\nHost: {up}\r\n").as_bytes())
        .await
        .unwrap();
    // ... and the rest of the head never comes.
    let answer = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut slow))
        .await
        .expect("the proxy closes the connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("no complete request within 0.3s"), "{answer}");
    assert_eq!(proxy.metrics.limited_count(Limit::HeaderTimeout), 1);

    let mut prompt = TcpStream::connect(proxy.addr).await.unwrap();
    let auth = proxy_auth("sbx");
    prompt
        .write_all(
            format!("GET http://{up}/prompt HTTP/1.1\r\nHost: {up}\r\nProxy-Authorization: {auth}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let head = read_head(&mut prompt).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn a_silent_tunnel_is_closed_and_a_busy_one_stays_open() {
    let echo_addr = echo().await;
    let proxy = start(vec![("sbx", sandbox(open_to(echo_addr.port())))], |p| {
        p.walls = opening(&["127.0.0.1"]);
        p.limits = limits(|l| l.idle_timeout = Duration::from_millis(400));
    })
    .await;
    let (status, mut busy) = connect(proxy.addr, "sbx", &echo_addr.to_string()).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Traffic every 100 ms for well over the idle timeout.
    for _ in 0..12 {
        assert!(echoes(&mut busy, b"ping").await, "a busy tunnel stays open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then silence: the proxy closes it.
    let closed = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut busy)).await;
    assert!(closed.is_ok(), "the silent tunnel was closed");
    assert_eq!(proxy.metrics.limited_count(Limit::IdleTimeout), 1);
    until_open(&proxy.metrics, 0).await;
}

/// A listener whose accept queue is full: connects to it wait for a SYN-ACK that does not come.
async fn unanswering() -> (std::net::SocketAddr, Vec<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => queued.push(stream),
            _ => {
                // The queue is full. Keep the listener alive with the test.
                std::mem::forget(listener);
                return (addr, queued);
            }
        }
    }
    panic!("the accept queue never filled");
}

#[tokio::test]
async fn a_destination_that_never_answers_gets_504_and_one_that_does_is_served() {
    let (silent, _queued) = unanswering().await;
    let up = upstream().await;
    let both = serde_json::json!({"type": "limited", "allowedHosts": [silent.to_string(), up.to_string()]});
    let proxy = start(vec![("sbx", sandbox(both))], |p| {
        p.walls = opening(&["127.0.0.1"]);
        p.limits = limits(|l| l.connect_timeout = Duration::from_millis(500));
    })
    .await;
    let c = client(proxy.addr, "sbx", None);
    let reply = c.get(format!("http://{silent}/")).send().await.unwrap();
    assert_eq!(reply.status(), 504);
    let reason = reply.text().await.unwrap();
    assert!(
        reason.contains(&format!("connecting to {silent} timed out after 0.5s")),
        "{reason}"
    );
    assert_eq!(proxy.metrics.limited_count(Limit::ConnectTimeout), 1);
    let reply = c.get(format!("http://{up}/ok")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn an_upstream_that_accepts_and_never_answers_gets_504_after_the_idle_timeout() {
    // Accepts, reads the request, and says nothing.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = mute.accept().await {
            held.push(s);
        }
    });
    let up = upstream().await;
    let both =
        serde_json::json!({"type": "limited", "allowedHosts": [mute_addr.to_string(), up.to_string()]});
    let proxy = start(vec![("sbx", sandbox(both))], |p| {
        p.walls = opening(&["127.0.0.1"]);
        p.limits = limits(|l| l.idle_timeout = Duration::from_millis(400));
    })
    .await;
    let c = client(proxy.addr, "sbx", None);
    let reply = c.get(format!("http://{mute_addr}/")).send().await.unwrap();
    assert_eq!(reply.status(), 504);
    let reason = reply.text().await.unwrap();
    assert!(
        reason.contains("127.0.0.1 sent nothing for 0.4s; the exchange was closed"),
        "{reason}"
    );
    assert_eq!(proxy.metrics.limited_count(Limit::IdleTimeout), 1);
    let reply = c.get(format!("http://{up}/ok")).send().await.unwrap();
    assert_eq!(reply.status(), 200, "an answering upstream is served");
}
