"""Hand-written hostile requests: what a generator from the OpenAPI document does not think of. Every answer must be
below 500, an error must be the API's envelope naming the request-id header's id, and nothing may take 10 s.

Requests go through http.client, which sends the path and the body bytes exactly as written (no dot-segment
removal, no re-encoding), so `..`, `%2e%2e`, invalid UTF-8 and NUL reach the gateway as sent.
"""

import http.client
import json
import random
import time
import urllib.parse
import urllib.request

import pytest

MAX_BODY = 4 << 20  # the gateway's default --max-body-bytes
SLOW = 10.0


class Reply:
    def __init__(self, status, headers, body, seconds):
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds

    def json(self):
        return json.loads(self.body)


def send(gateway, method, path, body=None, headers=None, key=True, read_limit=None):
    """One request on its own connection; `body` is bytes (sent as is) or a value (sent as JSON). `read_limit=0`
    reads only the head of a 200 (an event stream of an empty session sends nothing but a ping every 15 s)."""
    host = urllib.parse.urlsplit(gateway.url).netloc
    conn = http.client.HTTPConnection(host, timeout=SLOW + 5)
    all_headers = {"content-type": "application/json"}
    if key:
        all_headers["x-api-key"] = gateway.key
    all_headers.update(headers or {})
    if body is not None and not isinstance(body, (bytes, bytearray)) and not hasattr(body, "__next__"):
        body = json.dumps(body).encode()
    start = time.monotonic()
    try:
        try:
            conn.request(method, path, body=body, headers=all_headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (a 413) and closed before the whole body was sent: read its answer
        res = conn.getresponse()
        if read_limit is not None and res.status == 200:
            data = res.read(read_limit) if read_limit else b""
        else:
            data = res.read()
        return Reply(res.status, {k.lower(): v for k, v in res.getheaders()}, data, time.monotonic() - start)
    finally:
        conn.close()


def check(reply, what, expect=None):
    """The rules every answer follows; `expect` is the status (or statuses) the case must get."""
    assert reply.seconds < SLOW, f"{what}: took {reply.seconds:.1f} s"
    assert reply.status < 500, f"{what}: {reply.status} {reply.body[:500]!r}"
    assert "request-id" in reply.headers, f"{what}: no request-id header"
    if expect is not None:
        allowed = expect if isinstance(expect, (list, tuple, set)) else [expect]
        assert reply.status in allowed, f"{what}: {reply.status} (expected {allowed}) {reply.body[:500]!r}"
    if reply.status >= 400:
        assert reply.headers.get("content-type", "").startswith("application/json"), what
        body = reply.json()
        assert body["type"] == "error", f"{what}: {body}"
        assert body["error"]["type"] in {"invalid_request_error", "authentication_error", "permission_error",
                                         "not_found_error", "conflict_error", "rate_limit_error", "api_error",
                                         "overloaded_error"}, f"{what}: {body}"
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], f"{what}: {body}"
        assert body["request_id"] == reply.headers["request-id"], f"{what}: {body}"
    return reply


@pytest.fixture(scope="module")
def ids(gateway):
    """An agent, an environment, a session and a vault of the tenant, for paths that need a parent."""
    agent = check(send(gateway, "POST", "/v1/agents", {"name": "fuzz", "model": "claude-sonnet-4-5"}), "agent", 200)
    env = check(send(gateway, "POST", "/v1/environments", {"name": "fuzz"}), "environment", 200)
    session = check(send(gateway, "POST", "/v1/sessions", {"agent": agent.json()["id"],
                                                           "environment_id": env.json()["id"]}), "session", 200)
    vault = check(send(gateway, "POST", "/v1/vaults", {"display_name": "fuzz"}), "vault", 200)
    return {"agent": agent.json()["id"], "environment": env.json()["id"], "session": session.json()["id"],
            "vault": vault.json()["id"]}


def nested(depth, kind):
    return ("[" * depth + "]" * depth) if kind == "array" else ('{"a":' * depth + "1" + "}" * depth)


@pytest.mark.parametrize("depth", [129, 10_000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_deeply_nested_json_is_a_400(gateway, ids, depth, kind):
    deep = nested(depth, kind)
    bodies = {
        "/v1/agents": '{"name":"deep","model":"m","metadata":%s}' % deep,
        "/v1/environments": '{"name":"deep","sandbox":%s}' % deep,
        f"/v1/sessions/{ids['session']}/events":
            '{"events":[{"type":"user.message","content":[{"type":"text","text":"x","extra":%s}]}]}' % deep,
        f"/v1/agents/{ids['agent']}": '{"tools":[{"type":"custom","name":"t","input_schema":%s}]}' % deep,
        "/v1/vaults": '{"display_name":"deep","metadata":%s}' % deep,
    }
    for path, body in bodies.items():
        check(send(gateway, "POST", path, body.encode()), f"depth {depth} {kind} to {path}", 400)


def test_bodies_just_under_the_limit_are_read_and_just_over_are_a_413(gateway, ids):
    path = f"/v1/sessions/{ids['session']}/events"
    # Valid JSON of exactly MAX_BODY bytes: read whole and judged on its content (an unknown field), not its size.
    head, tail = b'{"events":[{"type":"user.message","content":[{"type":"text","text":"', b'"}]}],"pad":1}'
    under = head + b"x" * (MAX_BODY - len(head) - len(tail)) + tail
    assert len(under) == MAX_BODY
    check(send(gateway, "POST", path, under), "a body at the limit", 400)
    check(send(gateway, "POST", path, under + b" "), "a body one byte over the limit", 413)
    # Without Content-Length (chunked), cut while read, still in the envelope.
    def chunks():
        for _ in range(5):
            yield b" " * (1 << 20)
    check(send(gateway, "POST", path, chunks()),
          "a chunked body over the limit", 413)
    check(send(gateway, "POST", "/v1/agents", b"{" * (MAX_BODY - 1)), "a body of one million braces", 400)


@pytest.mark.parametrize("body", [
    b'{"name":"\xff\xfe","model":"m"}',
    b'{"name":"a\xc3","model":"m"}',
    b'\xef\xbb\xbf{"name":"bom","model":"m"}',
    b'{"name":"a","model":"m"}\x00',
    b'\x00',
    b'{"name":"a","name":"b","model":"m"}',
    b'{"name":"a","model":"m","metadata":{"k":"\\ud800"}}',
    b'{"name":"a","model":"m",}',
    b'{"name":"a","model":"m"} {"name":"b"}',
    b'[]', b'null', b'"x"', b'1e308', b'NaN',
])
def test_broken_json_is_a_400(gateway, body):
    check(send(gateway, "POST", "/v1/agents", body), f"body {body[:60]!r}", 400)


def test_a_duplicate_map_key_never_fails_the_server(gateway):
    # The last value wins, as in serde_json and most JSON parsers (RFC 8259 leaves it open).
    body = b'{"name":"a","model":"m","metadata":{"k":"1","k":"2"}}'
    reply = check(send(gateway, "POST", "/v1/agents", body), "duplicate metadata key", [200, 400])
    if reply.status == 200:
        assert reply.json()["metadata"] == {"k": "2"}


@pytest.mark.parametrize("text", ["a\u0000b", "\u0000", "\ufffe\uffff", "\U0010ffff", "a" * 256])
def test_nul_and_odd_characters_in_names_never_fail_the_server(gateway, ids, text):
    for method, path, body in [
        ("POST", "/v1/agents", {"name": text, "model": "m"}),
        ("POST", "/v1/environments", {"name": text}),
        ("POST", "/v1/vaults", {"display_name": text, "metadata": {text: text}}),
        ("POST", f"/v1/sessions/{ids['session']}", {"title": text, "metadata": {"k": text}}),
        ("POST", f"/v1/sessions/{ids['session']}/events",
         {"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]}),
    ]:
        check(send(gateway, method, path, body), f"{text[:20]!r} in {path}", [200, 400])


NUMBERS = ["1e308", "-1", "18446744073709551616", "18446744073709551615", "-9223372036854775809", "0", "1.5",
           "-0", "1e-308", "9007199254740993"]


@pytest.mark.parametrize("number", NUMBERS)
def test_extreme_numbers_in_bodies_never_fail_the_server(gateway, ids, number):
    for path, template in [
        ("/v1/agents", '{"name":"n","model":{"id":"m","provider":{"type":"anthropic","max_tokens":%s}}}'),
        (f"/v1/agents/{ids['agent']}", '{"version":%s}'),
        ("/v1/sessions", '{"agent":{"type":"agent","id":"%s","version":%%s},"environment_id":"%s"}'
         % (ids["agent"], ids["environment"])),
        ("/v1/sessions", '{"agent":"%s","environment_id":"%s","budget":{"type":"limit","max_tokens":%%s}}'
         % (ids["agent"], ids["environment"])),
        ("/v1/sessions", '{"agent":"%s","environment_id":"%s","budget":{"type":"limit","max_list_cost":'
         '{"amount":%%s,"currency":"USD"}}}' % (ids["agent"], ids["environment"])),
    ]:
        # 404: a version number that is valid but names no version.
        check(send(gateway, "POST", path, (template % number).encode()), f"{number} to {path}", [200, 400, 404, 409])


@pytest.mark.parametrize("number", NUMBERS + ["", "abc", "1,2", "0x10", "%201", "%00", "1%00"])
def test_extreme_numbers_in_queries_never_fail_the_server(gateway, ids, number):
    for path in ["/v1/agents?limit=", "/v1/sessions?limit=", f"/v1/sessions/{ids['session']}/events?limit=",
                 "/v1/files?limit=", f"/v1/agents/{ids['agent']}?version=",
                 f"/v1/sessions?agent_id={ids['agent']}&agent_version=", "/v1/agents?created_at[gte]=",
                 "/v1/vaults?include_archived="]:
        check(send(gateway, "GET", path + number), f"GET {path}{number}", [200, 400, 404])


CURSORS = ["", "0", "0-0", "0-1", "18446744073709551615-18446744073709551615", "18446744073709551616-0", "-1-0",
           "99999999999999999999999", "A" * 4096, "%00", "%FF%FE", "..", "/", "eyJ0eXBlIjoiZXZpbCJ9",
           "page_" + "z" * 200]


@pytest.mark.parametrize("cursor", CURSORS, ids=lambda c: c[:24])
def test_cursors_at_the_extremes_never_fail_the_server(gateway, ids, cursor):
    session = ids["session"]
    for path in [f"/v1/agents?page={cursor}", f"/v1/sessions?page={cursor}", f"/v1/vaults?page={cursor}",
                 f"/v1/sessions/{session}/events?page={cursor}", f"/v1/files?page={cursor}",
                 f"/v1/agents/{ids['agent']}/versions?page={cursor}",
                 f"/v1/vaults/{ids['vault']}/credentials?page={cursor}", f"/v1/environments?page={cursor}"]:
        check(send(gateway, "GET", path), f"GET {path[:120]}", [200, 400])
    for path, headers in [(f"/v1/sessions/{session}/events/stream?after={cursor}", {}),
                          (f"/v1/sessions/{session}/events/stream", {"last-event-id": cursor})]:
        try:
            reply = send(gateway, "GET", path, headers=headers, read_limit=0)
        except (TimeoutError, http.client.HTTPException) as err:
            raise AssertionError(f"GET {path[:120]}: {err}") from err
        if reply.status != 200:
            check(reply, f"stream {path[:120]} {headers}", 400)


def test_an_open_stream_answers_its_head_at_once(gateway, ids):
    reply = send(gateway, "GET", f"/v1/sessions/{ids['session']}/events/stream?after=0-0", read_limit=0)
    assert reply.status == 200 and reply.seconds < SLOW


ODD_IDS = [".", "..", "%2e%2e", "%2E", "%2e%2e%2f%2e%2e", "..%2f..%2fkube-system", "a" * 254, "a" * 10_000,
           "%00", "a%00b", "%ff", "%", "%zz", "sesn_" + "0" * 26, "%F0%9F%98%80", "a%20b", "-", "a.b", "A"]


@pytest.mark.parametrize("odd", ODD_IDS, ids=lambda o: o[:24])
def test_odd_ids_are_a_4xx(gateway, ids, odd):
    paths = [
        f"/v1/agents/{odd}", f"/v1/agents/{odd}/versions", f"/v1/environments/{odd}", f"/v1/sessions/{odd}",
        f"/v1/sessions/{odd}/events", f"/v1/sessions/{odd}/events/stream", f"/v1/vaults/{odd}",
        f"/v1/vaults/{odd}/credentials", f"/v1/vaults/{ids['vault']}/credentials/{odd}", f"/v1/files/{odd}",
        f"/v1/files/{odd}/content",
    ]
    for path in paths:
        for method in ["GET", "DELETE"]:
            check(send(gateway, method, path), f"{method} {path[:100]}", [400, 404, 405])
        check(send(gateway, "POST", path, {}), f"POST {path[:100]}", [400, 404, 405])
    check(send(gateway, "POST", "/v1/sessions", {"agent": odd, "environment_id": odd}), f"session of {odd[:40]}",
          [400, 404])
    check(send(gateway, "POST", "/v1/sessions", {"agent": ids["agent"], "environment_id": ids["environment"],
                                                  "vault_ids": [odd]}), f"vault_ids [{odd[:40]}]", [400, 404])


METHODS = ["PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "FOO", "get", "X" * 100, "DELETE"]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m[:24])
def test_random_methods_are_a_4xx(gateway, ids, method):
    for path in ["/v1/agents", f"/v1/agents/{ids['agent']}", f"/v1/sessions/{ids['session']}/events",
                 f"/v1/sessions/{ids['session']}/events/stream", "/v1/files", "/v1/openapi.yaml", "/v1/nothing",
                 "/", "/ui/"]:
        reply = send(gateway, method, path)
        if method == "HEAD":
            assert reply.status < 500 and reply.seconds < SLOW, f"HEAD {path}: {reply.status}"
            continue
        if reply.status < 400:
            continue  # a route that answers this method (OPTIONS has none; GET /ui/ is a page)
        check(reply, f"{method} {path}", [400, 401, 404, 405])


def series(gateway):
    with urllib.request.urlopen(gateway.metrics_url + "/metrics", timeout=5) as res:
        lines = res.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0] for line in lines if line and not line.startswith("#")}


def noise(gateway, rng, n):
    """Unauthenticated requests with random paths, methods, keys and ids."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_.~%"
    for _ in range(n):
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        path = rng.choice([f"/v1/{word}", f"/v1/agents/{word}", f"/v1/sessions/{word}/events", f"/{word}",
                           f"/v1/files/{word}/content", f"/v1/agents?page={word}", f"/ui/{word}"])
        method = rng.choice(["GET", "POST", "DELETE", "PUT", "PATCH", "FOO" + word[:5].upper().strip("%.~-_")])
        headers = rng.choice([{}, {"x-api-key": "sk-" + word}, {"authorization": "Bearer " + word},
                              {"authorization": word}])
        reply = send(gateway, method, path, b"{}" if method == "POST" else None, headers=headers, key=False)
        assert reply.status < 500, f"{method} {path}: {reply.status}"


def test_unauthenticated_noise_adds_no_metrics_series(gateway):
    rng = random.Random(21)
    noise(gateway, rng, 300)  # every kind of answer noise can get, once
    before = series(gateway)
    noise(gateway, rng, 600)
    after = series(gateway)
    assert after == before, f"new series: {sorted(after - before)[:20]}"


def test_the_gateway_is_still_up_and_unhurt(gateway):
    assert gateway.alive()
    check(send(gateway, "GET", "/v1/agents"), "a plain list after the abuse", 200)
