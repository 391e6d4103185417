"""Attachments with the official SDK: images and PDFs in a user message, inline or as uploaded files, reach the model
(the scripted model fails a request that lacks them); files that are not the tenant's, or not of a type the block
takes, and malformed URLs are refused with a 400 naming the field (a URL's fetch is e2e/tests/attachments.rs)."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import anthropic
import pytest

from conftest import PNG, TURN_TIMEOUT, read_until_idle, scripted_model

# A one-page PDF with no content: enough for a type check.
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def _file(block: str, file_id: str) -> dict[str, Any]:
    return {"type": block, "source": {"type": "file", "file_id": file_id}}


def test_uploaded_images_and_pdfs_reach_the_model(client: anthropic.Anthropic, environment) -> None:
    image = client.beta.files.upload(file=("pixel.png", PNG, "image/png"))
    pdf = client.beta.files.upload(file=("q3.pdf", PDF, "application/pdf"))
    agent = client.beta.agents.create(name="Reader", model=scripted_model(os.environ["CORRAL_ATTACHMENTS_SCRIPT"]))
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    message = {
        "type": "user.message",
        "content": [
            {"type": "text", "text": "What do these show?"},
            _file("image", image.id),
            {**_file("document", pdf.id), "title": "Q3"},
        ],
    }
    deadline = time.monotonic() + TURN_TIMEOUT
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(session.id, events=[message])
        events = read_until_idle(stream, deadline)
    errors = [e for e in events if e.type == "session.error"]
    assert not errors, f"the model did not get the attachments: {errors}"
    replies = [e for e in events if e.type == "agent.message"]
    assert replies and "I see the image" in replies[-1].content[0].text
    client.beta.sessions.delete(session.id)
    client.beta.agents.archive(agent.id)


def test_an_inline_pdf_reaches_the_model(client: anthropic.Anthropic, environment) -> None:
    image = client.beta.files.upload(file=("pixel.png", PNG, "image/png"))
    agent = client.beta.agents.create(name="Inline", model=scripted_model(os.environ["CORRAL_ATTACHMENTS_SCRIPT"]))
    session = client.beta.sessions.create(
        agent=agent.id,
        environment_id=environment.id,
    )
    inline = {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()}
    deadline = time.monotonic() + TURN_TIMEOUT
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.message", "content": [_file("image", image.id), {"type": "document", "source": inline}]}],
        )
        events = read_until_idle(stream, deadline)
    assert not [e for e in events if e.type == "session.error"], [e.type for e in events]
    client.beta.sessions.delete(session.id)
    client.beta.agents.archive(agent.id)


def test_foreign_unfit_and_malformed_url_attachments_are_refused_by_field(
    client: anthropic.Anthropic, other_tenant: anthropic.Anthropic, environment, hello_agent
) -> None:
    session = client.beta.sessions.create(agent=hello_agent.id, environment_id=environment.id)
    theirs = other_tenant.beta.files.upload(file=("theirs.png", PNG, "image/png"))
    text = client.beta.files.upload(file=("notes.txt", b"notes", "text/plain"))
    for block, field in (
        (_file("image", theirs.id), "events[0].content[0].source.file_id"),
        (_file("image", text.id), "events[0].content[0].source.file_id"),
        ({"type": "image", "source": {"type": "url", "url": "ftp://example.com/a.png"}}, "events[0].content[0].source.url"),
        (
            {"type": "document", "source": {"type": "url", "url": "https://user:pw@example.com/a.pdf"}},
            "events[0].content[0].source.url",
        ),
        (
            {"type": "document", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
            "events[0].content[0].source.media_type",
        ),
    ):
        with pytest.raises(anthropic.BadRequestError) as err:
            client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [block]}])
        assert field in err.value.message, err.value.message
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.sessions.create(
            agent=hello_agent.id,
            environment_id=environment.id,
            initial_events=[{"type": "user.message", "content": [_file("image", theirs.id)]}],
        )
    assert "initial_events[0].content[0].source.file_id" in err.value.message, err.value.message
    stored = [e.type for e in client.beta.sessions.events.list(session.id).data]
    assert "user.message" not in stored, f"nothing refused is stored: {stored}"
    client.beta.sessions.delete(session.id)
