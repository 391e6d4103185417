"""Skills with the official SDK: a skill's directory uploaded, its versions, its archive; another tenant finds
nothing; an agent that carries it names it to the model and the agent reads its files in the sandbox."""

from __future__ import annotations

import io
import os
import time
import zipfile
from typing import Any

import anthropic
import pytest

from conftest import TURN_TIMEOUT, one_tool_result, read_until_idle, scripted_model, user_message

SKILL_MD = b"""---
name: csv-report
description: Turns a CSV file into a one-line report.
---
# CSV report
Run scripts/report.sh with the CSV's path.
"""
SCRIPT = b"echo REPORT-READY\n"


def _upload(name: str = "csv-report", skill_md: bytes = SKILL_MD) -> list[Any]:
    return [
        (f"{name}/SKILL.md", skill_md, "text/markdown"),
        (f"{name}/scripts/report.sh", SCRIPT, "text/x-shellscript"),
    ]


def test_a_skill_and_its_versions_round_trip(client: anthropic.Anthropic) -> None:
    skill = client.beta.skills.create(files=_upload(), display_name="CSV reports")
    assert skill.id.startswith("skill_")
    assert (skill.type, skill.display_name, skill.source.type) == ("skill", "CSV reports", "custom")
    first = skill.latest_version_id
    assert client.beta.skills.retrieve(skill.id) == skill
    assert skill.id in [s.id for s in client.beta.skills.list(limit=1000)]
    assert client.beta.skills.list(source="anthropic").data == []

    v1 = client.beta.skills.versions.retrieve("latest", skill_id=skill.id)
    assert (v1.id, v1.skill_id, v1.name, v1.description) == (
        first,
        skill.id,
        "csv-report",
        "Turns a CSV file into a one-line report.",
    )
    v2 = client.beta.skills.versions.create(
        skill.id, files=_upload(skill_md=SKILL_MD.replace(b"one-line", b"two-line"))
    )
    assert int(v2.id) > int(v1.id) and v2.description.endswith("two-line report.")
    assert client.beta.skills.retrieve(skill.id).latest_version_id == v2.id
    assert [v.id for v in client.beta.skills.versions.list(skill.id)] == [v2.id, v1.id]
    assert client.beta.skills.versions.retrieve(v1.id, skill_id=skill.id) == v1

    archive = zipfile.ZipFile(io.BytesIO(client.beta.skills.versions.download(v1.id, skill_id=skill.id).read()))
    assert sorted(archive.namelist()) == ["csv-report/SKILL.md", "csv-report/scripts/report.sh"]
    assert archive.read("csv-report/SKILL.md") == SKILL_MD

    with pytest.raises(anthropic.BadRequestError) as renamed:
        client.beta.skills.versions.create(
            skill.id, files=_upload("other", SKILL_MD.replace(b"csv-report", b"other"))
        )
    assert "name cannot change" in renamed.value.message
    with pytest.raises(anthropic.BadRequestError) as no_skill_md:
        client.beta.skills.create(files=[("csv-report/notes.md", b"x", "text/markdown")])
    assert "SKILL.md" in no_skill_md.value.message

    deleted = client.beta.skills.versions.delete(v1.id, skill_id=skill.id)
    assert (deleted.id, deleted.type) == (v1.id, "skill_version_deleted")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.versions.delete(v2.id, skill_id=skill.id)
    gone = client.beta.skills.delete(skill.id)
    assert (gone.id, gone.type) == (skill.id, "skill_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.retrieve(skill.id)


def test_an_agent_pins_its_skill_and_another_tenant_finds_nothing(
    client: anthropic.Anthropic, other_tenant: anthropic.Anthropic
) -> None:
    skill = client.beta.skills.create(files=_upload())
    assert skill.display_name == "csv-report", "the display name defaults to SKILL.md's name"
    agent = client.beta.agents.create(
        name="Skilled", model="claude-sonnet-4-5", skills=[{"type": "custom", "skill_id": skill.id}]
    )
    assert [(s.type, s.skill_id, s.version) for s in agent.skills] == [
        ("custom", skill.id, skill.latest_version_id)
    ]
    for call in (
        lambda: other_tenant.beta.skills.retrieve(skill.id),
        lambda: other_tenant.beta.skills.versions.list(skill.id),
        lambda: other_tenant.beta.skills.versions.download("latest", skill_id=skill.id),
        lambda: other_tenant.beta.skills.delete(skill.id),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()
    with pytest.raises(anthropic.BadRequestError) as stranger:
        other_tenant.beta.agents.create(
            name="Thief", model="claude-sonnet-4-5", skills=[{"type": "custom", "skill_id": skill.id}]
        )
    assert "skills[0].skill_id" in stranger.value.message
    with pytest.raises(anthropic.BadRequestError) as prebuilt:
        client.beta.agents.create(
            name="Docs", model="claude-sonnet-4-5", skills=[{"type": "anthropic", "skill_id": "xlsx"}]
        )
    assert "skills[0].type" in prebuilt.value.message
    with pytest.raises(anthropic.BadRequestError) as bad_version:
        client.beta.agents.create(
            name="Old",
            model="claude-sonnet-4-5",
            skills=[{"type": "custom", "skill_id": skill.id, "version": "123"}],
        )
    assert "skills[0].version" in bad_version.value.message
    client.beta.agents.archive(agent.id)
    client.beta.skills.delete(skill.id)


def test_an_agents_skill_reaches_the_model_and_the_sandbox(client: anthropic.Anthropic, environment) -> None:
    skill = client.beta.skills.create(files=_upload())
    agent = client.beta.agents.create(
        name="Reporter",
        model=scripted_model(os.environ["CORRAL_SKILLS_SCRIPT"]),
        tools=[{"type": "agent_toolset_20260401"}],
        skills=[{"type": "custom", "skill_id": skill.id}],
    )
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    deadline = time.monotonic() + TURN_TIMEOUT
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(session.id, events=[user_message("Report on data.csv")])
        events = read_until_idle(stream, deadline)
    errors = [e for e in events if e.type == "session.error"]
    assert not errors, f"the model was not told of the skill: {errors}"
    results = [e for e in events if e.type == "agent.tool_result"]
    assert len(results) == 1, [e.type for e in events]
    out = "".join(b.text for b in results[0].content if getattr(b, "type", "") == "text")
    assert SKILL_MD.decode() in out, out
    assert "REPORT-READY" in out, out
    assert "READONLY" in out and "WRITABLE" not in out, out
    client.beta.sessions.delete(session.id)
    client.beta.agents.archive(agent.id)
    client.beta.skills.delete(skill.id)


def test_a_skill_kept_in_a_config_map_reaches_the_model_and_the_sandbox(
    client: anthropic.Anthropic, environment
) -> None:
    """The Agent `cm-reporter` and its skill's ConfigMap were applied with kubectl (e2e/conformance/manifests)."""
    agent_id = os.environ["CORRAL_CONFIG_MAP_SKILL_AGENT"]
    agent = client.beta.agents.retrieve(agent_id)
    (shown,) = agent.skills
    shown_type = shown["type"] if isinstance(shown, dict) else shown.type
    assert shown_type == "config_map", shown
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.agents.update(
            agent_id, version=agent.version, skills=[{"type": "configMap", "skill_id": "cm-report-skill"}]
        )
    assert "skills[0].type" in refused.value.message
    session = client.beta.sessions.create(agent=agent_id, environment_id=environment.id)
    out = one_tool_result(client, session.id, "Report")
    assert "Writes a report from a ConfigMap's skill." in out, out
    assert "CM-REPORT-READY" in out, out
    client.beta.sessions.delete(session.id)
