"""The SDK's own helpers for sessions, unchanged, against Corral: `accumulate_managed_agents_event` folding a live
stream, and the session tool runner (`client.beta.sessions.events.tool_runner`) answering a custom tool call that
the agent makes, so the turn pauses (`requires_action`) and resumes when the runner posts the result."""

from __future__ import annotations

import asyncio
import time

import anthropic
import pytest
from anthropic import beta_async_tool
from anthropic.lib.sessions import accumulate_managed_agents_event

from conftest import TURN_TIMEOUT, _env, scripted_model, user_message


def test_accumulate_folds_the_stream_into_the_last_agent_message(client: anthropic.Anthropic, hello_agent, environment):
    session = client.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id)
    deadline = time.monotonic() + TURN_TIMEOUT
    snapshot = None
    messages = []
    # Without `event_deltas` (Corral refuses it: it streams whole events), the helper folds each agent.message.
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(session.id, events=[user_message("hello")])
        for event in stream:
            snapshot = accumulate_managed_agents_event(snapshot, event)
            if event.type == "agent.message":
                messages.append(event)
                assert snapshot == event, "the buffered agent.message is canonical"
            if event.type == "session.status_idle" and event.stop_reason.type == "end_turn":
                break
            assert time.monotonic() < deadline, "the turn did not end"
    assert len(messages) == 2, "one message before the tool call, one after"
    assert snapshot is not None and snapshot.id == messages[-1].id
    assert "".join(block.text for block in snapshot.content).startswith("Done.")


@beta_async_tool
async def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


def test_session_tool_runner_answers_custom_tool_calls(async_client: anthropic.AsyncAnthropic, environment):
    async def scenario() -> None:
        agent = await async_client.beta.agents.create(
            name="Weather",
            model=scripted_model(_env("CORRAL_WEATHER_SCRIPT")),
            tools=[
                {
                    "type": "custom",
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "input_schema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ],
        )
        session = await async_client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        await async_client.beta.sessions.events.send(session.id, events=[user_message("Weather in Paris?")])
        calls = []
        async with asyncio.timeout(TURN_TIMEOUT):
            # max_idle: the runner stops once the session has been idle with end_turn for this long.
            async for call in async_client.beta.sessions.events.tool_runner(
                session.id, tools=[get_weather], max_idle=2
            ):
                calls.append(call)
        assert len(calls) == 1, calls
        assert calls[0].name == "get_weather" and calls[0].posted and not calls[0].is_error
        assert calls[0].event.input == {"city": "Paris"}

        history = [e async for e in async_client.beta.sessions.events.list(session.id)]
        types = [e.type for e in history]
        assert "agent.custom_tool_use" in types and "user.custom_tool_result" in types, types
        idles = [e for e in history if e.type == "session.status_idle"]
        assert [i.stop_reason.type for i in idles] == ["requires_action", "end_turn"]
        assert idles[0].stop_reason.event_ids == [calls[0].tool_use_id]
        result = next(e for e in history if e.type == "user.custom_tool_result")
        assert result.custom_tool_use_id == calls[0].tool_use_id
        assert "sunny in Paris" in str(result.content)
        final = [e for e in history if e.type == "agent.message"][-1]
        assert "sunny in Paris" in final.content[0].text
        await async_client.beta.sessions.delete(session.id)
        await async_client.beta.agents.archive(agent.id)

    asyncio.run(scenario())


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_both_key_headers_work(header: str):
    """The SDK sends x-api-key; Bearer tokens (auth_token=) work as well."""
    key = _env("CORRAL_API_KEY")
    base_url = _env("CORRAL_BASE_URL")
    if header == "authorization":
        sdk = anthropic.Anthropic(base_url=base_url, auth_token=key, api_key=None, max_retries=0)
    else:
        sdk = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)
    sdk.beta.agents.list(limit=1)
