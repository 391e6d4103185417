"""Session outputs with the official SDK on a real cluster: files the agent writes under /mnt/session/outputs become
Files scoped to the session, listed with `files.list(scope_id=...)` and downloadable; a changed output replaces
its earlier File; a symlink is not an output; another tenant sees none of them."""

from __future__ import annotations

import os

import anthropic
import pytest

from conftest import one_tool_result, scripted_model


def _turn(client: anthropic.Anthropic, session_id: str, text: str) -> None:
    out = one_tool_result(client, session_id, text)
    assert "not all saved" not in out, out


def _outputs(client: anthropic.Anthropic, session_id: str) -> dict[str, anthropic.types.beta.FileMetadata]:
    return {f.filename: f for f in client.beta.files.list(scope_id=session_id, limit=100)}


def test_files_the_agent_writes_to_outputs_become_session_files(
    client: anthropic.Anthropic, other_tenant: anthropic.Anthropic, environment
) -> None:
    agent = client.beta.agents.create(
        name="Outputs",
        model=scripted_model(os.environ["CORRAL_OUTPUTS_SCRIPT"]),
        tools=[{"type": "agent_toolset_20260401"}],
    )
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)

    _turn(client, session.id, "Write the report")
    outputs = _outputs(client, session.id)
    assert sorted(outputs) == ["charts/data.csv", "report.md"], f"a symlink is no output: {sorted(outputs)}"
    report = outputs["report.md"]
    assert report.id.startswith("file_")
    assert report.scope is not None and (report.scope.type, report.scope.id) == ("session", session.id)
    first = b"# Report\nfirst draft\n"
    assert (report.mime_type, report.size_bytes, report.downloadable) == ("text/markdown", len(first), True)
    assert client.beta.files.download(report.id).read() == first
    assert client.beta.files.download(outputs["charts/data.csv"].id).read() == b"q,v\n1,2\n"
    assert outputs["charts/data.csv"].mime_type == "text/csv"
    assert report.id in {f.id for f in client.beta.files.list(limit=1000)}, "outputs are the tenant's files"

    _turn(client, session.id, "Finish the report")
    again = _outputs(client, session.id)
    assert sorted(again) == ["charts/data.csv", "report.md"], "a changed output replaces its earlier file"
    assert again["charts/data.csv"].id == outputs["charts/data.csv"].id, "an unchanged output is not stored again"
    assert again["report.md"].id != report.id
    assert client.beta.files.download(again["report.md"].id).read() == b"# Report\nfinal\n"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(report.id)

    assert list(other_tenant.beta.files.list(scope_id=session.id)) == []
    with pytest.raises(anthropic.NotFoundError):
        other_tenant.beta.files.download(again["report.md"].id)

    client.beta.sessions.delete(session.id)
    client.beta.agents.archive(agent.id)
    for f in again.values():
        client.beta.files.delete(f.id)
