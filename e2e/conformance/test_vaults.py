"""Vaults and credentials through the official SDK: the typed objects parse, secrets never come back, pages
iterate, and another tenant sees nothing."""

from __future__ import annotations

import anthropic
import pytest

SECRET = "conformance-secret-token-0123456789"


def test_vault_and_credential_lifecycle(client: anthropic.Anthropic, other_tenant: anthropic.Anthropic):
    vault = client.beta.vaults.create(display_name="Conformance", metadata={"suite": "conformance"})
    assert vault.type == "vault"
    assert vault.display_name == "Conformance"
    assert vault.metadata == {"suite": "conformance"}
    assert vault.archived_at is None

    cred = client.beta.vaults.credentials.create(
        vault.id,
        display_name="MCP",
        auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp", "token": SECRET},
    )
    assert cred.type == "vault_credential"
    assert cred.vault_id == vault.id
    assert cred.auth.type == "static_bearer"
    assert cred.auth.mcp_server_url == "https://mcp.example.com/mcp"
    assert SECRET not in cred.model_dump_json()

    fetched = client.beta.vaults.credentials.retrieve(cred.id, vault_id=vault.id)
    assert fetched.id == cred.id and SECRET not in fetched.model_dump_json()
    updated = client.beta.vaults.credentials.update(
        cred.id, vault_id=vault.id, auth={"type": "static_bearer", "token": "rotated"}, metadata={"k": "v"}
    )
    assert updated.metadata == {"k": "v"}
    assert "rotated" not in updated.model_dump_json()
    listed = [c.id for c in client.beta.vaults.credentials.list(vault.id)]
    assert listed == [cred.id]

    renamed = client.beta.vaults.update(vault.id, display_name="Renamed")
    assert renamed.display_name == "Renamed"
    assert vault.id in [v.id for v in client.beta.vaults.list(limit=1)]

    with pytest.raises(anthropic.NotFoundError):
        other_tenant.with_options(max_retries=0).beta.vaults.retrieve(vault.id)
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.with_options(max_retries=0).beta.vaults.credentials.create(
            vault.id, auth={"type": "static_bearer", "mcp_server_url": "not a url", "token": "x"}
        )
    assert "auth.mcp_server_url" in str(bad.value)

    archived = client.beta.vaults.credentials.archive(cred.id, vault_id=vault.id)
    assert archived.archived_at is not None
    deleted = client.beta.vaults.credentials.delete(cred.id, vault_id=vault.id)
    assert deleted.type == "vault_credential_deleted"
    assert client.beta.vaults.archive(vault.id).archived_at is not None
    assert client.beta.vaults.delete(vault.id).type == "vault_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.with_options(max_retries=0).beta.vaults.retrieve(vault.id)
