"""Memory stores with the official SDK: a store, its memories and their versions; an optimistic update that lost
its race is a 409 the SDK does not retry; a redacted version keeps its record; another tenant finds nothing."""

from __future__ import annotations

import hashlib

import anthropic
import pytest


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_store_keeps_memories_and_every_version(client: anthropic.Anthropic) -> None:
    stores = client.beta.memory_stores
    store = stores.create(name="Conformance notes", description="What the suite learned", metadata={"suite": "c"})
    assert store.id.startswith("memstore_") and store.type == "memory_store"
    assert (store.name, store.description, store.metadata) == ("Conformance notes", "What the suite learned", {"suite": "c"})
    assert stores.retrieve(store.id) == store
    assert store.id in [s.id for s in stores.list(limit=100)]

    memory = stores.memories.create(store.id, path="/notes.md", content="first")
    assert memory.id.startswith("mem_") and memory.content is None  # create answers view=basic
    assert (memory.path, memory.content_sha256, memory.content_size_bytes) == ("/notes.md", _sha("first"), 5)
    assert stores.memories.retrieve(memory.id, memory_store_id=store.id).content == "first"

    updated = stores.memories.update(
        memory.id,
        memory_store_id=store.id,
        content="second",
        precondition={"type": "content_sha256", "content_sha256": memory.content_sha256},
        view="full",
    )
    assert (updated.content, updated.content_sha256) == ("second", _sha("second"))
    assert updated.memory_version_id != memory.memory_version_id

    # A writer who read "first" too loses: a 409 the SDK does not retry.
    with pytest.raises(anthropic.ConflictError) as lost:
        stores.memories.update(
            memory.id,
            memory_store_id=store.id,
            content="stale",
            precondition={"type": "content_sha256", "content_sha256": _sha("first")},
        )
    assert lost.value.type == "memory_precondition_failed_error"
    assert lost.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.ConflictError) as taken:
        stores.memories.create(store.id, path="/notes.md", content="again")
    assert taken.value.type == "memory_path_conflict_error"
    assert stores.memories.retrieve(memory.id, memory_store_id=store.id).content == "second"

    listed = [m.path for m in stores.memories.list(store.id, path_prefix="/")]
    assert listed == ["/notes.md"]

    versions = list(stores.memory_versions.list(store.id, memory_id=memory.id))
    assert [v.operation for v in versions] == ["modified", "created"]
    assert versions[1].created_by is not None and versions[1].created_by.type == "api_actor"
    assert versions[1].created_by.api_key_id.startswith("apikey_")
    first = stores.memory_versions.retrieve(versions[1].id, memory_store_id=store.id)
    assert first.content == "first"

    redacted = stores.memory_versions.redact(versions[1].id, memory_store_id=store.id)
    assert redacted.redacted_at is not None
    assert (redacted.content, redacted.path, redacted.content_sha256) == (None, None, None)
    assert redacted.created_by == versions[1].created_by
    again = stores.memory_versions.retrieve(versions[1].id, memory_store_id=store.id)
    assert again.content is None and again.memory_id == memory.id

    deleted = stores.memories.delete(memory.id, memory_store_id=store.id, expected_content_sha256=_sha("second"))
    assert (deleted.id, deleted.type) == (memory.id, "memory_deleted")
    ops = [v.operation for v in stores.memory_versions.list(store.id, memory_id=memory.id)]
    assert ops == ["deleted", "modified", "created"]

    archived = stores.archive(store.id)
    assert archived.archived_at is not None
    with pytest.raises(anthropic.BadRequestError):
        stores.memories.create(store.id, path="/late.md", content="x")
    gone = stores.delete(store.id)
    assert (gone.id, gone.type) == (store.id, "memory_store_deleted")
    with pytest.raises(anthropic.NotFoundError):
        stores.retrieve(store.id)


def test_limits_are_refused_and_another_tenant_finds_nothing(
    client: anthropic.Anthropic, other_tenant: anthropic.Anthropic
) -> None:
    store = client.beta.memory_stores.create(name="Private")
    with pytest.raises(anthropic.BadRequestError) as big:
        client.beta.memory_stores.memories.create(store.id, path="/big.md", content="x" * 102_401)
    assert "content" in big.value.message
    with pytest.raises(anthropic.BadRequestError) as deep:
        client.beta.memory_stores.memories.create(store.id, path="/a" * 21, content="")
    assert "path" in deep.value.message
    memory = client.beta.memory_stores.memories.create(store.id, path="/secret.md", content="s")
    for call in (
        lambda: other_tenant.beta.memory_stores.retrieve(store.id),
        lambda: other_tenant.beta.memory_stores.memories.retrieve(memory.id, memory_store_id=store.id),
        lambda: other_tenant.beta.memory_stores.memory_versions.list(store.id),
        lambda: other_tenant.beta.memory_stores.delete(store.id),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()
    client.beta.memory_stores.delete(store.id)
