"""File resources with the official SDK on a real cluster: a file given at create is in the sandbox for the agent's
first `bash` call, read-only; a file added on the live session appears there, and a deleted one goes."""

from __future__ import annotations

import os

import anthropic

from conftest import one_tool_result, scripted_model


def test_file_resources_reach_the_sandbox_and_follow_the_session(
    client: anthropic.Anthropic, environment
) -> None:
    agent = client.beta.agents.create(
        name="Files",
        model=scripted_model(os.environ["CORRAL_RESOURCES_SCRIPT"]),
        tools=[{"type": "agent_toolset_20260401"}],
    )
    first = client.beta.files.upload(file=("first.txt", b"the first file's words", "text/plain"))
    second = client.beta.files.upload(file=("second.txt", b"the second file's words", "text/plain"))
    session = client.beta.sessions.create(
        agent=agent.id,
        environment_id=environment.id,
        resources=[{"type": "file", "file_id": first.id, "mount_path": "/mnt/session/uploads/first.txt"}],
    )
    (given,) = session.resources
    assert (given.type, given.file_id, given.mount_path) == ("file", first.id, "/mnt/session/uploads/first.txt")

    out = one_tool_result(client, session.id, "Read the first file")
    assert "the first file's words" in out, out
    assert "READONLY" in out and "WRITABLE" not in out, f"the agent could overwrite a file resource: {out}"

    added = client.beta.sessions.resources.add(
        session.id, type="file", file_id=second.id, mount_path="/workspace/inputs/second.txt"
    )
    assert added.id.startswith("sesrsc_") and added.file_id == second.id
    listed = client.beta.sessions.resources.list(session.id)
    assert [r.id for r in listed.data] == [given.id, added.id]
    got = client.beta.sessions.resources.retrieve(added.id, session_id=session.id)
    assert (got.id, got.type, got.file_id, got.mount_path) == (added.id, "file", second.id, added.mount_path)
    out = one_tool_result(client, session.id, "Read the second file")
    assert "the second file's words" in out, out

    deleted = client.beta.sessions.resources.delete(added.id, session_id=session.id)
    assert (deleted.id, deleted.type) == (added.id, "session_resource_deleted")
    out = one_tool_result(client, session.id, "List the files")
    assert "GONE" in out and "first.txt" in out, out

    client.beta.sessions.delete(session.id)
    client.beta.agents.archive(agent.id)
