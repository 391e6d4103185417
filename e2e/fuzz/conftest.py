"""The stack the fuzzing suite attacks: a real `corral-gateway serve` (child process), a real redis-server, a real S3
server (SeaweedFS's `weed mini`, for the Files API) and a real kube-apiserver ($KUBECONFIG, the light mode that
hack/fuzz.sh brings up). One tenant key made with `corral-gateway create-key`.

The gateway runs without rate limits (the fuzzer sends hundreds of requests a second) and with the default body
limit, so the limits tested are the ones users get.
"""

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CORRAL_BIN_DIR", ROOT / "target" / "debug"))
S3_ACCESS_KEY = "corral-fuzz"
S3_SECRET_KEY = "corral-fuzz-secret"
S3_BUCKET = "corral-files"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair():
    """A free port whose +10000 (SeaweedFS's gRPC port for it) is free too."""
    while True:
        port = free_port()
        if port < 55_000:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10_000))
                return port
            except OSError:
                continue


def wait_for(check, what, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    """Child processes, each with its log in `dir`, stopped in reverse order."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.children = {}

    def start(self, name, args, **kw):
        with open(self.dir / f"{name}.log", "ab") as log:
            child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                     **kw)
        self.children[name] = child
        return child

    def log(self, name):
        return (self.dir / f"{name}.log").read_text(errors="replace")

    def stop(self):
        for child in reversed(list(self.children.values())):
            try:
                os.killpg(child.pid, 9)
            except ProcessLookupError:
                pass
            child.wait()


class Gateway:
    """What the tests need to reach the gateway."""

    def __init__(self, url, metrics_url, key, process, stack):
        self.url = url
        self.metrics_url = metrics_url
        self.key = key
        self.process = process
        self.stack = stack

    def alive(self):
        return self.process.poll() is None


def s3_ready(endpoint):
    """The S3 port answers (the bucket may take a little longer; uploads are retried by the fuzzer anyway)."""
    host, port = endpoint.rsplit(":", 1)
    socket.create_connection((host.removeprefix("http://"), int(port)), 1).close()
    return True


@pytest.fixture(scope="session")
def gateway():
    tmp = tempfile.TemporaryDirectory(prefix="corral-fuzz-")
    stack = Stack(tmp.name)
    try:
        redis_port, gw_port, metrics_port = free_port(), free_port(), free_port()
        stack.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"])
        wait_for(lambda: socket.create_connection(("127.0.0.1", redis_port), 1).close() or True, "redis")
        weed = os.environ.get("CORRAL_WEED")
        storage_args = []
        if weed:
            master, volume, filer, s3 = (free_port_pair() for _ in range(4))
            (Path(tmp.name) / "s3").mkdir()
            stack.start("s3", [weed, "mini", f"-dir={tmp.name}/s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                               f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
                               f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
                               "-admin.ui=false", f"-bucket={S3_BUCKET}"],
                        env={**os.environ, "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY})
            endpoint = f"http://127.0.0.1:{s3}"
            wait_for(lambda: s3_ready(endpoint), "the S3 server")
            storage_args = ["--object-store-bucket", S3_BUCKET, "--object-store-endpoint", endpoint,
                            "--object-store-access-key-id", S3_ACCESS_KEY,
                            "--object-store-secret-access-key", S3_SECRET_KEY]
        process = stack.start("gateway", [
            str(BIN / "corral-gateway"), "--log-format", "text", "serve",
            "--redis-url", f"redis://127.0.0.1:{redis_port}/",
            "--listen", f"127.0.0.1:{gw_port}", "--metrics-addr", f"127.0.0.1:{metrics_port}",
            "--rate-limit", "0", "--rate-limit-bytes", "0", "--max-streams-per-key", "0", *storage_args])
        url = f"http://127.0.0.1:{gw_port}"
        wait_for(lambda: urllib.request.urlopen(url + "/readyz", timeout=1).status == 200, "the gateway")
        ns = f"fuzz-{os.getpid()}-{int(time.time())}"
        out = subprocess.run([str(BIN / "corral-gateway"), "--log-format", "text", "create-key", "--namespace", ns],
                             check=True, capture_output=True, text=True)
        key = out.stdout.strip()

        def key_works():
            req = urllib.request.Request(url + "/v1/agents", headers={"x-api-key": key})
            try:
                return urllib.request.urlopen(req, timeout=5).status == 200
            except urllib.error.HTTPError:
                return False

        wait_for(key_works, "the key to be accepted")
        gw = Gateway(url, f"http://127.0.0.1:{metrics_port}", key, process, stack)
        yield gw
        assert gw.alive(), "the gateway process died during the run:\n" + stack.log("gateway")[-4000:]
        assert "panicked" not in stack.log("gateway"), stack.log("gateway")[-4000:]
    finally:
        stack.stop()
        tmp.cleanup()
