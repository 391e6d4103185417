"""The whole life of a session through the official SDK: create agent, environment and session, open the stream,
send a message, follow the turn (a bash tool call in the sandbox pod) to idle, reconnect, read the history page by
page, update, archive and delete."""

from __future__ import annotations

import time

import anthropic
import pytest

from conftest import (
    TURN_TIMEOUT,
    raw_events,
    read_raw_until_idle,
    read_until_idle,
    user_message,
)


def wait_not_found(retrieve, timeout: float = 60) -> None:
    """Calls `retrieve` until it raises NotFoundError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = retrieve()
        except anthropic.NotFoundError:
            return
        assert time.monotonic() < deadline, f"still found after delete: {found}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def turn(client: anthropic.Anthropic, hello_agent, environment):
    """One session with one finished turn, seen live by a typed SDK stream and by a raw stream (for cursors)."""
    session = client.beta.sessions.create(
        agent=hello_agent.id, environment_id=environment.id, title="conformance", metadata={"case": "flow"}
    )
    deadline = time.monotonic() + TURN_TIMEOUT
    with client.beta.sessions.events.stream(session.id) as typed, raw_events(client, session.id) as raw:
        client.beta.sessions.events.send(
            session.id, events=[user_message("Say hello and check the sandbox works")]
        )
        live = read_until_idle(typed, deadline)
        wire = read_raw_until_idle(raw, deadline)
    return session, live, wire


def test_resources_round_trip(client: anthropic.Anthropic, hello_agent, environment):
    assert hello_agent.id.startswith("agent-")
    assert hello_agent.version == 1
    assert hello_agent.model.id == "scripted"
    assert hello_agent.metadata == {"suite": "conformance"}
    assert client.beta.agents.retrieve(hello_agent.id).name == "Hello"
    assert client.beta.environments.retrieve(environment.id).config.networking.type == "unrestricted"
    assert hello_agent.id in [a.id for a in client.beta.agents.list()]


def test_session_starts_idle_with_pinned_agent(client: anthropic.Anthropic, hello_agent, environment):
    session = client.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id)
    assert session.id.startswith("sesn-")
    assert session.status == "idle"
    assert session.agent.id == hello_agent.id and session.agent.version == hello_agent.version
    assert session.environment_id == environment.id
    client.beta.sessions.delete(session.id)


def test_stream_follows_the_turn_through_a_tool_call(turn):
    _, live, _ = turn
    types = [e.type for e in live]
    for expected in ("user.message", "session.status_running", "agent.message", "agent.tool_use", "agent.tool_result"):
        assert expected in types, f"{expected} missing from {types}"
    assert types.index("agent.tool_use") < types.index("agent.tool_result") < len(types) - 1
    tool_use = live[types.index("agent.tool_use")]
    tool_result = live[types.index("agent.tool_result")]
    assert tool_use.name == "bash"
    assert tool_result.tool_use_id == tool_use.id
    assert not tool_result.is_error
    assert "hello" in str(tool_result.content), "bash ran in the sandbox"
    text = "".join(block.text for e in live if e.type == "agent.message" for block in e.content)
    assert "the sandbox works" in text
    assert live[-1].type == "session.status_idle" and live[-1].stop_reason.type == "end_turn"
    assert len({e.id for e in live}) == len(live), "no event twice"


def test_wire_format_names_events_and_carries_cursors(turn):
    _, live, wire = turn
    assert [e.id for e in live] == [w.data["id"] for w in wire], "both streams saw the same events"
    for w in wire:
        assert w.event == w.data["type"]
        assert w.cursor, f"{w.event} has an id: cursor"
    assert len({w.cursor for w in wire}) == len(wire)


def test_reconnect_with_last_event_id_gets_the_rest_exactly_once(client: anthropic.Anthropic, turn):
    session, live, wire = turn
    cut = next(i for i, w in enumerate(wire) if w.event == "agent.tool_use")
    deadline = time.monotonic() + TURN_TIMEOUT
    with client.beta.sessions.events.stream(
        session.id, extra_headers={"Last-Event-ID": wire[cut].cursor}
    ) as resumed:
        rest = read_until_idle(resumed, deadline)
    assert [e.id for e in rest] == [e.id for e in live[cut + 1 :]]


def test_history_pages_hold_the_whole_turn(client: anthropic.Anthropic, turn):
    session, live, _ = turn
    first = client.beta.sessions.events.list(session.id, limit=3)
    assert len(first.data) == 3
    assert first.has_next_page()
    second = first.get_next_page()
    assert second.data[0].id == live[3].id, "the next page starts where the first ended"
    every = [e.id for e in client.beta.sessions.events.list(session.id, limit=4)]  # auto-paginates
    assert every == [e.id for e in live]


def test_session_status_and_usage_after_the_turn(client: anthropic.Anthropic, turn):
    session, _, _ = turn
    deadline = time.monotonic() + 60
    while True:
        current = client.beta.sessions.retrieve(session.id)
        if current.status == "idle" and (current.usage.output_tokens or 0) > 0:
            break
        assert time.monotonic() < deadline, f"status {current.status}, usage {current.usage}"
        time.sleep(0.5)
    assert current.title == "conformance"
    assert current.metadata == {"case": "flow"}


def test_sessions_list_paginates_without_duplicates(client: anthropic.Anthropic, hello_agent, environment):
    created = [
        client.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id).id for _ in range(3)
    ]
    page = client.beta.sessions.list(agent_id=hello_agent.id, limit=1)
    assert len(page.data) == 1 and page.has_next_page()
    listed = [s.id for s in client.beta.sessions.list(agent_id=hello_agent.id, limit=2)]
    assert len(listed) == len(set(listed))
    assert set(created) <= set(listed)
    for session_id in created:
        client.beta.sessions.delete(session_id)


def test_update_versions_the_agent(client: anthropic.Anthropic, environment):
    agent = client.beta.agents.create(name="Versioned", model="claude-sonnet-4-5")
    updated = client.beta.agents.update(agent.id, version=agent.version, system="Answer in French.")
    assert updated.version == agent.version + 1
    assert updated.system == "Answer in French."
    assert client.beta.agents.retrieve(agent.id, version=agent.version).system is None
    assert [v.version for v in client.beta.agents.versions.list(agent.id)] == [2, 1]
    with pytest.raises(anthropic.ConflictError):
        client.beta.agents.update(agent.id, version=agent.version, system="stale")
    client.beta.agents.archive(agent.id)


def test_update_session_title(client: anthropic.Anthropic, hello_agent, environment):
    session = client.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id)
    updated = client.beta.sessions.update(session.id, title="renamed")
    assert updated.title == "renamed"
    assert client.beta.sessions.retrieve(session.id).title == "renamed"
    client.beta.sessions.delete(session.id)


def test_archive_and_delete(client: anthropic.Anthropic, hello_agent):
    environment = client.beta.environments.create(name="short-lived")
    session = client.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id)

    archived = client.beta.sessions.archive(session.id)
    assert archived.archived_at is not None
    assert session.id not in [s.id for s in client.beta.sessions.list()]
    assert session.id in [s.id for s in client.beta.sessions.list(include_archived=True)]

    deleted = client.beta.sessions.delete(session.id)
    assert deleted.id == session.id and deleted.type == "session_deleted"
    # The Session leaves Kubernetes once the operator has released its finalizer (its sandbox): soon, not at once.
    wait_not_found(lambda: client.beta.sessions.retrieve(session.id))

    assert client.beta.environments.archive(environment.id).archived_at is not None
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.update(environment.id, name="archived environments are read-only")
    assert client.beta.environments.delete(environment.id).type == "environment_deleted"
    wait_not_found(lambda: client.beta.environments.retrieve(environment.id))

    agent = client.beta.agents.create(name="Retired", model="claude-sonnet-4-5")
    assert client.beta.agents.archive(agent.id).archived_at is not None
    assert client.beta.agents.retrieve(agent.id).archived_at is not None
