//! Servers a test runs on this host, reached from the cluster through [`crate::Cluster::forward_from_host`].

use std::process::{Child, Command, Stdio};

/// A server on `127.0.0.1:port` that appends `<path> <Authorization header>` of every GET to `record` and answers
/// `ok`: what a host a credential is meant for received.
pub fn recorder(port: u16, record: &std::path::Path) -> anyhow::Result<Child> {
    let script = r#"
import http.server, sys
record = sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(record, "a") as f:
            f.write(self.path + " " + str(self.headers.get("Authorization")) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;
    Ok(Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .arg(record)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}
