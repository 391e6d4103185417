"""Fixtures of the conformance suite: SDK clients for the gateway under test and the scripted agents.

run.sh provides the environment: CORRAL_BASE_URL (the gateway), CORRAL_API_KEY (a key of the tenant namespace that
holds the scripts' ConfigMaps), CORRAL_OTHER_API_KEY (a key of another tenant) and the ConfigMap names.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import anthropic
import pytest

# How long one turn may take: the first one in a fresh namespace waits for the harness Deployment and a sandbox pod.
TURN_TIMEOUT = float(os.environ.get("CORRAL_TURN_TIMEOUT", "240"))


# The smallest PNG: one transparent pixel.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201e5270ede0000000049454e44ae426082"
)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite with e2e/conformance/run.sh", returncode=2)
    return value


def make_client(api_key: str, **kwargs: Any) -> anthropic.Anthropic:
    """A client of the gateway exactly as a user makes one: only base_url and api_key differ from the defaults."""
    return anthropic.Anthropic(
        base_url=_env("CORRAL_BASE_URL"),
        api_key=api_key,
        # A stream's read timeout must outlast the gateway's keep-alive pings (15 s).
        timeout=60.0,
        **kwargs,
    )


@pytest.fixture(scope="session")
def client() -> anthropic.Anthropic:
    return make_client(_env("CORRAL_API_KEY"))


@pytest.fixture(scope="session")
def async_client() -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=_env("CORRAL_BASE_URL"),
        api_key=_env("CORRAL_API_KEY"),
        timeout=60.0,
    )


@pytest.fixture(scope="session")
def other_tenant() -> anthropic.Anthropic:
    return make_client(_env("CORRAL_OTHER_API_KEY"))


def scripted_model(configmap: str) -> dict[str, Any]:
    """Corral's extension of `model`: a scripted provider that plays the script in a ConfigMap of the tenant."""
    return {
        "id": "scripted",
        "provider": {"type": "scripted", "script_ref": {"name": configmap, "key": "script.yaml"}},
    }


@pytest.fixture(scope="session")
def hello_agent(client: anthropic.Anthropic):
    """The example scripted agent (examples/scripts/hello-tool.yaml): says hello, runs bash, sums up."""
    return client.beta.agents.create(
        name="Hello",
        model=scripted_model(_env("CORRAL_HELLO_SCRIPT")),
        system="Be brief.",
        tools=[{"type": "agent_toolset_20260401"}],
        metadata={"suite": "conformance"},
    )


@pytest.fixture(scope="session")
def environment(client: anthropic.Anthropic):
    return client.beta.environments.create(
        name="conformance", config={"type": "cloud", "networking": {"type": "unrestricted"}}
    )


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def is_end_turn(event: Any) -> bool:
    return event.type == "session.status_idle" and event.stop_reason.type == "end_turn"


def read_until_idle(stream: Iterator[Any], deadline: float) -> list[Any]:
    """Events of an SDK stream up to and including the session.status_idle that ends the turn."""
    events = []
    for event in stream:
        events.append(event)
        if is_end_turn(event):
            return events
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no end_turn idle within {TURN_TIMEOUT:.0f} s; saw {[e.type for e in events]}")


def one_tool_result(client: anthropic.Anthropic, session_id: str, text: str) -> str:
    """Sends `text`, follows the turn to its end and returns the text of its one tool result."""
    deadline = time.monotonic() + TURN_TIMEOUT
    with client.beta.sessions.events.stream(session_id) as stream:
        client.beta.sessions.events.send(session_id, events=[user_message(text)])
        events = read_until_idle(stream, deadline)
    results = [e for e in events if e.type == "agent.tool_result"]
    assert len(results) == 1, [e.type for e in events]
    content: Any = results[0].content
    return "".join(block.text for block in content if getattr(block, "type", "") == "text")


@dataclass
class RawEvent:
    """One SSE event as sent on the wire: its cursor, its `event:` name and its JSON data."""

    cursor: str
    event: str
    data: dict[str, Any] = field(default_factory=dict)


def raw_events(client: anthropic.Anthropic, session_id: str) -> Any:
    """The stream through the SDK's raw streaming response, to see the SSE `id:` cursors the typed stream hides."""
    return client.beta.sessions.events.with_streaming_response.stream(session_id)


def read_raw_until_idle(response: Any, deadline: float) -> list[RawEvent]:
    import json

    events: list[RawEvent] = []
    cursor, name, data = "", "", []
    for line in response.iter_lines():
        if line == "":
            if name and name != "ping" and data:
                events.append(RawEvent(cursor, name, json.loads("\n".join(data))))
                last = events[-1]
                if last.event == "session.status_idle" and last.data["stop_reason"]["type"] == "end_turn":
                    return events
            name, data = "", []
            if time.monotonic() > deadline:
                break
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "id":
            cursor = value
        elif key == "event":
            name = value
        elif key == "data":
            data.append(value)
    raise AssertionError(f"the raw stream ended before the turn did; saw {[e.event for e in events]}")
