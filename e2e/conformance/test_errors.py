"""The SDK's error classes for what a client gets wrong: unknown ids, invalid bodies (the message names the field),
a wrong key, and another tenant's objects."""

from __future__ import annotations

import anthropic
import pytest

from conftest import make_client, user_message


@pytest.fixture(scope="module")
def strict(client: anthropic.Anthropic) -> anthropic.Anthropic:
    """The SDK's defaults: it retries 408, 409, 429 and 5xx (unless x-should-retry says no), never 400, 401 or 404,
    so what these tests expect must come at once."""
    return client


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.beta.agents.retrieve("agent-01unknown"),
        lambda c: c.beta.agents.update("agent-01unknown", version=1, name="x"),
        lambda c: c.beta.agents.archive("agent-01unknown"),
        lambda c: c.beta.environments.retrieve("env-01unknown"),
        lambda c: c.beta.environments.delete("env-01unknown"),
        lambda c: c.beta.sessions.retrieve("sesn-01unknown"),
        lambda c: c.beta.sessions.archive("sesn-01unknown"),
        lambda c: c.beta.sessions.delete("sesn-01unknown"),
        lambda c: c.beta.sessions.events.list("sesn-01unknown"),
        lambda c: c.beta.sessions.events.send("sesn-01unknown", events=[user_message("hi")]),
        lambda c: c.beta.sessions.events.stream("sesn-01unknown"),
    ],
    ids=[
        "agent.retrieve",
        "agent.update",
        "agent.archive",
        "environment.retrieve",
        "environment.delete",
        "session.retrieve",
        "session.archive",
        "session.delete",
        "events.list",
        "events.send",
        "events.stream",
    ],
)
def test_unknown_ids_are_not_found(strict: anthropic.Anthropic, call):
    with pytest.raises(anthropic.NotFoundError) as error:
        call(strict)
    assert error.value.status_code == 404
    assert error.value.body["error"]["type"] == "not_found_error"
    assert error.value.request_id, "every error carries a request id"


def test_session_of_unknown_agent(strict: anthropic.Anthropic, environment):
    with pytest.raises(anthropic.NotFoundError):
        strict.beta.sessions.create(agent="agent-01unknown", environment_id=environment.id)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.beta.agents.create(name="", model="claude-sonnet-4-5"), "name"),
        (
            lambda c: c.beta.agents.create(
                name="x",
                model="claude-sonnet-4-5",
                tools=[{"type": "custom", "name": "bad name!", "description": "d", "input_schema": {"type": "object"}}],
            ),
            "tools[0].name",
        ),
        (
            lambda c: c.beta.agents.create(name="x", model={"id": "s", "provider": {"type": "scripted"}}),
            "model.provider.script_ref",
        ),
        (lambda c: c.beta.agents.create(name="x", model="m", multiagent={"type": "coordinator"}), "multiagent"),
        (
            lambda c: c.beta.environments.create(name="x", config={"type": "cloud", "networking": {"type": "bogus"}}),
            "config.networking.type",
        ),
        (lambda c: c.beta.agents.list(limit=0), "limit"),
        (lambda c: c.beta.agents.create(name="x", model="m", extra_body={"colour": "red"}), "colour"),
    ],
    ids=["agent.name", "tool.name", "script_ref", "multiagent", "networking", "list.limit", "unknown.field"],
)
def test_invalid_bodies_name_the_field(strict: anthropic.Anthropic, call, field):
    with pytest.raises(anthropic.BadRequestError) as error:
        call(strict)
    assert error.value.status_code == 400
    assert error.value.body["error"]["type"] == "invalid_request_error"
    message = error.value.body["error"]["message"]
    assert message.startswith(f"{field}:") or f"{field}" in message, message


def test_invalid_events_name_the_event(strict: anthropic.Anthropic, hello_agent, environment):
    session = strict.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id)
    with pytest.raises(anthropic.BadRequestError) as error:
        strict.beta.sessions.events.send(session.id, events=[user_message("fine"), {"type": "user.bogus"}])
    assert error.value.body["error"]["message"].startswith("events[1].type:")
    with pytest.raises(anthropic.BadRequestError) as error:
        strict.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": []}])
    assert error.value.body["error"]["message"].startswith("events[0].content:")
    with pytest.raises(anthropic.BadRequestError) as error:
        strict.beta.sessions.events.send(session.id, events=[{**user_message("hi"), "priority": "high"}])
    assert error.value.body["error"]["message"] == "events[0].priority: Extra inputs are not permitted"
    assert list(strict.beta.sessions.events.list(session.id)) == [], "a refused batch appends nothing"
    strict.beta.sessions.delete(session.id)


def test_wrong_key_is_an_authentication_error():
    wrong = make_client("sk-corral-0000000000000000000000000000000000000000000000000000000000000000", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as error:
        wrong.beta.agents.list()
    assert error.value.status_code == 401
    assert error.value.body["error"]["type"] == "authentication_error"


def test_another_tenant_sees_nothing(client: anthropic.Anthropic, other_tenant: anthropic.Anthropic, hello_agent, environment):
    session = client.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id)
    stranger = other_tenant.with_options(max_retries=0)
    for call in (
        lambda: stranger.beta.agents.retrieve(hello_agent.id),
        lambda: stranger.beta.environments.retrieve(environment.id),
        lambda: stranger.beta.sessions.retrieve(session.id),
        lambda: stranger.beta.sessions.events.list(session.id),
        lambda: stranger.beta.sessions.events.send(session.id, events=[user_message("hijack")]),
        lambda: stranger.beta.sessions.delete(session.id),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()
    assert session.id not in [s.id for s in stranger.beta.sessions.list()]
    assert hello_agent.id not in [a.id for a in stranger.beta.agents.list()]
    assert client.beta.sessions.retrieve(session.id).id == session.id, "the owner's session is untouched"
    assert list(client.beta.sessions.events.list(session.id)) == []
    client.beta.sessions.delete(session.id)

