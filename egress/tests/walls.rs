//! The walls no tenant opens, tried from a sandbox's position on loopback: a host list (or an agent's MCP servers)
//! naming an internal address gets no further than the proxy, whatever the name or spelling; only the operator's
//! allow-list opens a named internal host; and only the open ports (or a port an entry names) are reached, by
//! `CONNECT` and by plain HTTP alike. Each refusal is paired with the permitted path succeeding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{client, connect, echo, echoes, networking, opening, sandbox, start, upstream};
use corral_egress::{directory::SandboxContext, policy::HostPolicy};

#[tokio::test]
async fn a_tenant_naming_an_internal_host_is_refused_and_only_the_operator_opens_it() {
    let up = upstream().await;
    let port = up.port();
    let limited = || {
        sandbox(serde_json::json!({"type": "limited", "allowedHosts": [
            format!("127.0.0.1:{port}"), format!("localhost:{port}"), "169.254.169.254", format!("[::ffff:127.0.0.1]:{port}"),
        ]}))
    };
    // The agent's MCP server on an internal address, allowed by the Environment.
    let mcp = SandboxContext {
        policy: HostPolicy::new(
            &networking(serde_json::json!({"type": "limited", "allowMcpServers": true})),
            &[format!("127.0.0.1:{port}")],
        ),
        credentials: vec![],
    };
    let closed = start(vec![("sbx", limited()), ("mcp", mcp.clone())], |_| {}).await;
    let sbx = client(closed.addr, "sbx", None);
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
    ] {
        let reply = sbx.get(&url).send().await.unwrap();
        assert_eq!(reply.status(), 403, "{url}");
        let reason = reply.text().await.unwrap();
        assert!(
            reason.contains("an internal or private address, which sandboxes never reach"),
            "{url}: {reason}"
        );
    }
    let reply = client(closed.addr, "mcp", None)
        .get(format!("http://127.0.0.1:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 403, "an MCP host is no way in either");
    let (status, _) = connect(closed.addr, "sbx", &format!("127.0.0.1:{port}")).await;
    assert!(status.starts_with("HTTP/1.1 403"), "nor is CONNECT: {status}");

    // The operator opens 127.0.0.1 by name: the same requests go through, and only for that name.
    let open = start(vec![("sbx", limited()), ("mcp", mcp)], |p| {
        p.walls = opening(&["127.0.0.1"])
    })
    .await;
    let sbx = client(open.addr, "sbx", None);
    let reply = sbx
        .get(format!("http://127.0.0.1:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.unwrap(), "auth=- body=");
    let reply = client(open.addr, "mcp", None)
        .get(format!("http://127.0.0.1:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "the MCP host once the operator opened it");
    let (status, _) = connect(open.addr, "sbx", &format!("127.0.0.1:{port}")).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let reply = sbx
        .get(format!("http://localhost:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply.status(),
        403,
        "localhost is another name, which the operator did not open"
    );
}

#[tokio::test]
async fn connect_and_plain_http_reach_only_the_open_ports() {
    let echo_addr = echo().await;
    let up = upstream().await;
    let unrestricted = sandbox(serde_json::json!({"type": "unrestricted"}));
    let named = sandbox(serde_json::json!({"type": "limited", "allowedHosts": [
        format!("127.0.0.1:{}", echo_addr.port()), "127.0.0.1",
    ]}));
    // The operator opened 127.0.0.1 (any port) to internal addresses; the ports stay the defaults.
    let proxy = start(vec![("open", unrestricted.clone()), ("named", named)], |p| {
        p.walls = opening(&["127.0.0.1"]);
    })
    .await;
    let (status, _) = connect(proxy.addr, "open", &echo_addr.to_string()).await;
    assert!(
        status.starts_with("HTTP/1.1 403"),
        "an unrestricted sandbox, a closed port: {status}"
    );
    let reply = client(proxy.addr, "open", None)
        .get(format!("http://{up}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 403);
    let reason = reply.text().await.unwrap();
    assert!(
        reason.contains(&format!("port {} of 127.0.0.1 is closed", up.port())),
        "{reason}"
    );
    assert!(reason.contains("ports 443, 80"), "{reason}");
    // A host list entry naming the port opens it (for that host); one without a port does not open others.
    let (status, mut tunnel) = connect(proxy.addr, "named", &echo_addr.to_string()).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(echoes(&mut tunnel, b"through").await);
    let (status, _) = connect(proxy.addr, "named", &up.to_string()).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");

    // The operator opens the port for everyone: the unrestricted sandbox gets through too.
    let echo_port = echo_addr.port();
    let wider = start(vec![("open", unrestricted)], |p| {
        p.walls = opening(&["127.0.0.1"]);
        p.walls.ports.push(echo_port);
    })
    .await;
    let (status, mut tunnel) = connect(wider.addr, "open", &echo_addr.to_string()).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(echoes(&mut tunnel, b"wider").await);
}
