"""The Files API with the official SDK: upload, list newest first, metadata, download, delete; expiry; another
tenant sees nothing."""

from __future__ import annotations

import datetime

import anthropic
import pytest


def test_upload_list_download_delete(client: anthropic.Anthropic) -> None:
    first = client.beta.files.upload(file=("notes.txt", b"hello files", "text/plain"))
    assert first.id.startswith("file_")
    assert (first.filename, first.mime_type, first.size_bytes, first.downloadable) == (
        "notes.txt",
        "text/plain",
        11,
        True,
    )
    assert first.expires_at is None and first.scope is None
    payload = bytes(range(256)) * 4096  # 1 MiB
    second = client.beta.files.upload(file=("blob.bin", payload, "application/octet-stream"))

    listed = [f.id for f in client.beta.files.list(limit=1000)]
    assert listed.index(second.id) < listed.index(first.id), "newest first"
    page = client.beta.files.list(limit=1)
    assert [f.id for f in page.data] == [listed[0]] and page.has_next_page()
    assert [f.id for f in client.beta.files.list(ids=[first.id])] == [first.id]

    assert client.beta.files.retrieve_metadata(first.id) == first
    assert client.beta.files.download(second.id).read() == payload
    download = client.beta.files.download(first.id)
    assert download.read() == b"hello files"
    assert download.headers["content-disposition"].startswith('attachment; filename="notes.txt"')
    assert download.headers["x-content-type-options"] == "nosniff"

    deleted = client.beta.files.delete(first.id)
    assert (deleted.id, deleted.type) == (first.id, "file_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(first.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.download(first.id)
    client.beta.files.delete(second.id)


def test_expiry_is_reported_and_its_range_checked(client: anthropic.Anthropic) -> None:
    f = client.beta.files.upload(file=("e.txt", b"e", "text/plain"), expires_in_seconds=3600)
    assert f.expires_at is not None
    assert f.expires_at - f.created_at == datetime.timedelta(hours=1)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.files.upload(file=("e.txt", b"e", "text/plain"), expires_in_seconds=10)
    assert err.value.message.find("expires_in_seconds") >= 0
    client.beta.files.delete(f.id)


def test_another_tenant_finds_nothing(client: anthropic.Anthropic, other_tenant: anthropic.Anthropic) -> None:
    f = client.beta.files.upload(file=("mine.txt", b"mine", "text/plain"))
    for call in (
        lambda: other_tenant.beta.files.retrieve_metadata(f.id),
        lambda: other_tenant.beta.files.download(f.id),
        lambda: other_tenant.beta.files.delete(f.id),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()
    assert f.id not in [x.id for x in other_tenant.beta.files.list(limit=1000)]
    assert [x.id for x in other_tenant.beta.files.list(ids=[f.id])] == []
    client.beta.files.delete(f.id)
