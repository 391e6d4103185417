"""The session trace viewer in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium) against a real `corral-gateway serve`, a real kube-apiserver ($KUBECONFIG), a real redis-server and a
real `corral-harness serve` in local mode playing a scripted agent with a real bash tool call.

Run it with hack/viewer-test.sh, which installs what it needs and brings the light API server up. It saves a
screenshot of the timeline to docs/viewer.png.
"""

import json
import os
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CORRAL_BIN_DIR", ROOT / "target" / "debug"))
SCREENSHOT = Path(os.environ.get("CORRAL_VIEWER_SCREENSHOT", ROOT / "docs" / "viewer.png"))

SCRIPT = """turns:
  - content:
      - thinking: "The user wants to know the sandbox works."
      - text: "I'll check the sandbox with a command."
      - tool_use: {name: bash, input: {command: "echo hello from the sandbox"}}
    usage: {input_tokens: 420, output_tokens: 38, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
    delay_ms: 20
  - content: [{text: "The sandbox answered: hello from the sandbox."}]
    usage: {input_tokens: 480, output_tokens: 27, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
  - content: [{text: "Second turn, streamed live."}]
    usage: {input_tokens: 500, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
"""


def manifest():
    script = "".join(f"    {line}\n" for line in SCRIPT.splitlines())
    return (
        "kind: ConfigMap\napiVersion: v1\nmetadata: {name: s}\ndata:\n  script.yaml: |\n" + script + "---\n"
        "apiVersion: corral.dev/v1alpha1\nkind: Agent\nmetadata: {name: viewer}\nspec:\n  model:\n    id: scripted\n"
        "    provider: {type: scripted, scriptRef: {name: s, key: script.yaml}}\n"
        "  tools:\n    - type: agent_toolset_20260401\n"
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    """Child processes, stopped in reverse order; each one's output goes to a log file in `dir`."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.children = []

    def start(self, name, args, **kw):
        with open(self.dir / f"{name}.log", "wb") as log:
            child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                     **kw)
        self.children.append(child)
        return child

    def stop(self):
        for child in reversed(self.children):
            try:
                os.killpg(child.pid, 9)
            except ProcessLookupError:
                pass
            child.wait()


class ViewerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.procs = Processes(cls.tmp.name)
        try:
            cls._start_stack()
        except BaseException:
            cls.procs.stop()
            raise

    @classmethod
    def _start_stack(cls):
        tmp = Path(cls.tmp.name)
        redis_port, gw_port = free_port(), free_port()
        cls.procs.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no"])
        redis_url = f"redis://127.0.0.1:{redis_port}/"
        wait_for(lambda: socket.create_connection(("127.0.0.1", redis_port), 1).close() or True, "redis")
        cls.procs.start("gateway", [str(BIN / "corral-gateway"), "--log-format", "text", "serve", "--redis-url",
                                    redis_url, "--listen", f"127.0.0.1:{gw_port}",
                                    "--metrics-addr", "127.0.0.1:0"])
        cls.url = f"http://127.0.0.1:{gw_port}"
        wait_for(lambda: urllib.request.urlopen(cls.url + "/readyz", timeout=1).status == 200, "the gateway")
        cls.ns = f"viewer-{os.getpid()}-{int(time.time())}"
        out = subprocess.run([str(BIN / "corral-gateway"), "--log-format", "text", "create-key", "--namespace",
                              cls.ns], check=True, capture_output=True, text=True)
        cls.key = out.stdout.strip()
        agent_file = tmp / "agent.yaml"
        agent_file.write_text(manifest())
        cls.procs.start("harness", [str(BIN / "corral-harness"), "serve", "--namespace", cls.ns, "--log", "warn",
                                    "--metrics-addr", "127.0.0.1:0", "--redis-url", redis_url,
                                    "--agent-file", str(agent_file),
                                    "--price-table", "[{model: scripted, input: 3, output: 15}]"])
        wait_for(lambda: cls.api("GET", "/v1/agents")[0] == 200, "the key to be accepted")

    @classmethod
    def tearDownClass(cls):
        cls.procs.stop()
        cls.tmp.cleanup()

    @classmethod
    def api(cls, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(cls.url + path, data=data, method=method,
                                     headers={"x-api-key": cls.key, "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                return res.status, json.loads(res.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def send(self, session, text):
        status, body = self.api("POST", f"/v1/sessions/{session}/events",
                                {"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]})
        self.assertEqual(status, 200, body)

    def idle_count(self, session):
        status, page = self.api("GET", f"/v1/sessions/{session}/events?limit=1000")
        self.assertEqual(status, 200, page)
        return sum(1 for e in page["data"] if e["type"] == "session.status_idle")

    def browser(self):
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,1500", "--force-device-scale-factor=1"]:
            options.add_argument(arg)
        service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        driver = webdriver.Chrome(service=service, options=options)
        self.addCleanup(driver.quit)
        return driver

    def test_the_timeline_of_a_scripted_session_renders_and_follows_live(self):
        _, agent = self.api("POST", "/v1/agents", {"name": "viewer", "model": "scripted"})
        _, env = self.api("POST", "/v1/environments", {"name": "box"})
        status, session = self.api("POST", "/v1/sessions", {"agent": agent["id"], "environment_id": env["id"],
                                                            "title": "Check the sandbox"})
        self.assertEqual(status, 200, session)
        sid = session["id"]
        self.send(sid, "Say hello and check the sandbox works")
        wait_for(lambda: self.idle_count(sid) >= 1, "the first turn to end")

        driver = self.browser()
        wait = WebDriverWait(driver, 20)
        driver.get(self.url + "/ui/")
        # The page asks for the key; it never goes into the URL.
        key_input = wait.until(ec.visibility_of_element_located((By.ID, "key")))
        key_input.send_keys(self.key)
        driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-session="{sid}"]')))
        self.assertIn("Check the sandbox", row.text)
        self.assertIn("idle", row.text)
        self.assertNotIn(self.key, driver.current_url)

        row.find_element(By.TAG_NAME, "a").click()
        timeline = wait.until(ec.presence_of_element_located((By.ID, "timeline")))
        tool = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, '#timeline li[data-type="agent.tool_use"] pre.output')))
        tool_item = driver.find_element(By.CSS_SELECTOR, '#timeline li[data-type="agent.tool_use"]')
        self.assertIn("bash", tool_item.text)
        self.assertIn("echo hello from the sandbox", tool_item.find_element(By.CSS_SELECTOR, "pre.input").text)
        self.assertEqual(tool.text.strip(), "hello from the sandbox")
        text = timeline.text
        for expected in ["Say hello and check the sandbox works", "I'll check the sandbox with a command.",
                         "thinking", "420 in", "38 out", "The sandbox answered: hello from the sandbox.",
                         "end_turn"]:
            self.assertIn(expected, text)
        types = [li.get_attribute("data-type") for li in timeline.find_elements(By.CSS_SELECTOR, "li")]
        self.assertEqual(types[0], "user.message", types)
        self.assertIn("span.model_request_end", types)
        self.assertNotIn(self.key, driver.current_url)

        # A new message while the page is open arrives over the live stream, without a reload.
        self.send(sid, "Once more")
        wait.until(ec.text_to_be_present_in_element((By.ID, "timeline"), "Second turn, streamed live."))
        self.assertEqual(driver.find_element(By.ID, "stream-state").text, "live")
        # The summary follows the session's usage: (420 + 480 + 500) × $3 + (38 + 27 + 10) × $15 per million tokens
        # = 5,325 per million = 0.5325 cents.
        wait.until(ec.text_to_be_present_in_element((By.ID, "session-summary"), "$0.0053"))
        self.assertIn("1475", driver.find_element(By.ID, "session-summary").text)

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.execute_script("window.scrollTo(0, 0)")
        self.assertTrue(driver.save_screenshot(str(SCREENSHOT)), "screenshot")
        self.assertGreater(SCREENSHOT.stat().st_size, 10_000)

    def test_a_wrong_key_is_refused_and_asked_again(self):
        driver = self.browser()
        wait = WebDriverWait(driver, 20)
        driver.get(self.url + "/ui/")
        wait.until(ec.visibility_of_element_located((By.ID, "key"))).send_keys("sk-corral-wrong")
        driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
        error = wait.until(ec.visibility_of_element_located((By.ID, "login-error")))
        self.assertIn("401", error.text)
        self.assertIsNone(driver.execute_script("return sessionStorage.getItem('corral.apiKey')"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
