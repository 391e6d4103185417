"""Nothing accepted and ignored: every request field of the official SDK is honoured or refused with a 400 naming it.

The test walks the SDK's parameter types (`sdk_fields.fields`) for every endpoint Corral serves and sends each field
through the SDK, one at a time, in the smallest request that holds it. `HONOURED` says how Corral honours a field:
`RT` (it comes back in the response at the same path: stored and shown) or a sentence naming what acts on it (the
request must succeed; the behaviour itself is tested where the sentence says). `REFUSED` lists what Corral refuses:
the request must fail with a 400 whose message names the field. A field in neither list fails the test: when the
SDK gains a field, it stays red until Corral honours or refuses it. An entry that matches no SDK field fails too, so
the lists stay true.

Patterns: `*` stands for one name (no `.` or `:`), `**` for anything; a REFUSED pattern covers every field under it.
Runs in the conformance suite (run.sh, on a cluster) and in the gateway's integration tests without one
(gateway/tests/integration/sdk_fields.rs runs this file against an in-process gateway).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import anthropic
import pytest
from anthropic.types.beta import (
    agent_create_params,
    file_list_params,
    file_upload_params,
    memory_store_create_params,
    memory_store_list_params,
    memory_store_update_params,
    skill_create_params,
    skill_list_params,
    agent_list_params,
    agent_update_params,
    environment_create_params,
    environment_list_params,
    environment_update_params,
    session_create_params,
    session_list_params,
    session_update_params,
    vault_create_params,
    vault_list_params,
    vault_update_params,
)
from anthropic.types.beta.memory_stores import (
    memory_create_params,
    memory_delete_params,
    memory_list_params,
    memory_retrieve_params,
    memory_update_params,
    memory_version_list_params,
    memory_version_retrieve_params,
)
from anthropic.types.beta.sessions import (
    event_list_params,
    event_send_params,
    event_stream_params,
    resource_add_params,
    resource_list_params,
)
from anthropic.types.beta.skills import version_create_params, version_list_params
from anthropic.types.beta.vaults import credential_create_params, credential_list_params, credential_update_params

import sdk_fields
from conftest import PNG

RT = "round-trips: stored and shown in the response"


# --- what Corral honours, and how -------------------------------------------------------------------------------

_AGENT = {
    "name": RT,
    "description": RT,
    "system": RT,
    "metadata": RT,
    "version": "optimistic concurrency: a stale version is a 409 (test_flow.py)",
    "model:literal": "the model id sent to the provider (model.id in the response)",
    "model:str": "the model id sent to the provider (model.id in the response)",
    "model:BetaManagedAgentsModelConfigParams.id": RT,
    "model:BetaManagedAgentsModelConfigParams.effort:*": "sent to the provider as the reasoning effort (harness wire tests)",
    "model:BetaManagedAgentsModelConfigParams.effort:*.type": "sent to the provider as the reasoning effort (harness wire tests)",
    "model:BetaManagedAgentsModelConfigParams.speed": "only \"standard\" (the default) is accepted; \"fast\" is refused",
    "execution_identity:service_account.type": "the only identity Corral runs as (the default)",
    "mcp_servers.name": RT,
    "mcp_servers.type": RT,
    "mcp_servers.url": RT,
    "tools:agent_toolset_20260401.type": "the built-in tools offered to the model (e2e turn tests)",
    "tools:agent_toolset_20260401.default_config.enabled": "a disabled tool is not offered (harness tests)",
    "tools:agent_toolset_20260401.default_config.permission_policy:always_*.type": "always_ask pauses for user.tool_confirmation (e2e permissions)",
    "tools:agent_toolset_20260401.configs:*.name": RT,
    "tools:agent_toolset_20260401.configs:*.type": RT,
    "tools:agent_toolset_20260401.configs:*.enabled": "a disabled tool is not offered (harness tests)",
    "tools:agent_toolset_20260401.configs:*.permission_policy:always_*.type": "always_ask pauses for user.tool_confirmation (e2e permissions)",
    "tools:mcp_toolset.type": "the MCP server's tools offered to the model (e2e mcp)",
    "tools:mcp_toolset.mcp_server_name": RT,
    "tools:mcp_toolset.default_config.enabled": "a disabled tool is not offered (harness tests)",
    "tools:mcp_toolset.default_config.permission_policy:always_*.type": "always_ask pauses for user.tool_confirmation",
    "tools:mcp_toolset.configs.name": RT,
    "tools:mcp_toolset.configs.enabled": "a disabled tool is not offered (harness tests)",
    "tools:mcp_toolset.configs.permission_policy:always_*.type": "always_ask pauses for user.tool_confirmation",
    "tools:custom.type": "offered to the model; answered with user.custom_tool_result (test_helpers.py)",
    "tools:custom.name": RT,
    "tools:custom.description": RT,
    "tools:custom.input_schema.type": RT,
    "tools:custom.input_schema.properties": RT,
    "tools:custom.input_schema.required": RT,
    "skills:custom.type": "named to the model, its files in the sandbox (test_skills.py)",
    "skills:custom.skill_id": RT,
    "skills:custom.version": RT,
}

_ENVIRONMENT = {
    "name": RT,
    "description": RT,
    "metadata": RT,
    "scope": RT,
    "config:cloud.type": RT,
    "config:cloud.networking:unrestricted.type": "the sandbox's NetworkPolicy allows public hosts (e2e egress)",
    "config:cloud.networking:limited.type": "the egress proxy allows only the listed hosts (e2e egress)",
    "config:cloud.networking:limited.allowed_hosts": "the egress proxy's allowlist (e2e egress)",
    "config:cloud.networking:limited.allow_mcp_servers": "the agent's MCP hosts join the allowlist",
    "config:cloud.networking:limited.allow_package_managers": "the registries join the allowlist",
    "config:cloud.packages.type": RT,
    "config:cloud.packages.*": "installed in the sandbox pod's init container (e2e packages)",
}

_LIST = {
    "limit": "page size (pagination tests)",
    "page": "the cursor of the next page (pagination tests)",
    "include_archived": "archived objects are listed only with it",
    "created_at_*": "filters on created_at (gateway query tests)",
}

_USER_MESSAGE_CONTENT = {
    "*:user.message.type": "appended to the log and wakes the harness (e2e turn tests)",
    "*:user.message.content:text.type": "the text reaches the model",
    "*:user.message.content:text.text": "the text reaches the model",
    "*:user.message.content:image.type": "inline images reach the model (harness context tests)",
    "*:user.message.content:image.source:base64.*": "inline images reach the model (harness context tests)",
    "*:user.message.content:image.source:file.*": "the harness reads the file and hands it to the model (test_attachments.py)",
    "*:user.message.content:document.source:base64.*": "the PDF reaches the model (test_attachments.py)",
    "*:user.message.content:document.source:file.*": "the harness reads the file: a PDF to the model, text as text (test_attachments.py)",
    "*:user.message.content:image.source:url.*": "the harness fetches it under the environment's network policy (e2e attachments.rs)",
    "*:user.message.content:document.source:url.*": "the harness fetches it under the environment's network policy (e2e attachments.rs)",
    "*:user.message.content:document.type": "text documents reach the model as text",
    "*:user.message.content:document.title": "kept with the document in the log",
    "*:user.message.content:document.context": "kept with the document in the log",
    "*:user.message.content:document.source:text.*": "text documents reach the model as text",
    "*:user.message.content:redacted.type": "a redacted block is kept out of the model's context",
}

_MEMORY_VIEW = "basic leaves content null, full includes it (gateway memory.rs, test_memory.py)"
_PRECONDITION = "the update applies only while the content has that hash, else 409 (test_memory.py)"

HONOURED: dict[str, dict[str, str]] = {
    "agents.create": _AGENT,
    "agents.update": _AGENT,
    "agents.list": _LIST,
    "environments.create": _ENVIRONMENT,
    "environments.update": _ENVIRONMENT,
    "environments.list": _LIST,
    "sessions.create": {
        "agent:str": "the session runs that agent's latest version (agent.id in the response)",
        "agent:agent.id": "the session runs that agent (agent.id in the response)",
        "agent:agent.type": "the session runs that agent",
        "agent:agent.version": "the session runs that version (agent.version in the response)",
        "environment_id": RT,
        "title": RT,
        "metadata": RT,
        "vault_ids": RT,
        "budget.type": "the harness stops the session at the budget (budgets tests)",
        "budget.max_list_cost.*": RT,
        "resources:github_repository.type": "cloned into the sandbox before its first tool call (e2e repositories)",
        "resources:github_repository.url": RT,
        "resources:github_repository.authorization_token": "stored write-only in a Secret; the egress proxy sends it to the repository's host, never echoed (e2e repositories)",
        "resources:github_repository.checkout:*.*": RT,
        "resources:github_repository.mount_path": RT,
        "resources:file.*": RT,
        **_USER_MESSAGE_CONTENT,
    },
    "sessions.update": {
        "title": RT,
        "metadata": RT,
        "budget.type": "replaces the budget the harness enforces (budgets tests)",
        "budget.max_list_cost.*": "replaces the budget (only upwards; budgets tests)",
    },
    "sessions.list": {
        **_LIST,
        "order": "asc or desc by created_at",
        "agent_id": "filters sessions by agent",
        "agent_version": "filters sessions by agent version",
        "statuses": "filters sessions by status",
        "deployment_id": "matches nothing: Corral has no deployments",
        "memory_store_id": "matches nothing: sessions cannot attach memory stores yet",
    },
    "events.send": {
        **_USER_MESSAGE_CONTENT,
        "*:user.interrupt.*": "stops the running turn (e2e interrupt)",
        "*:user.tool_confirmation.*": "answers a paused tool call (e2e permissions)",
        "*:user.custom_tool_result.type": "answers a custom tool call (test_helpers.py)",
        "*:user.custom_tool_result.custom_tool_use_id": "answers that call (test_helpers.py)",
        "*:user.custom_tool_result.is_error": "reaches the model as the result's is_error",
        "*:user.custom_tool_result.content:text.*": "reaches the model as the tool result",
        "*:user.custom_tool_result.content:image.type": "inline images reach the model",
        "*:user.custom_tool_result.content:image.source:base64.*": "inline images reach the model",
        "*:user.custom_tool_result.content:image.source:file.*": "the harness reads the file and hands it to the model",
        "*:user.custom_tool_result.content:document.source:base64.*": "the PDF reaches the model",
        "*:user.custom_tool_result.content:document.source:file.*": "the harness reads the file and hands it to the model",
        "*:user.custom_tool_result.content:image.source:url.*": "the harness fetches it under the network policy",
        "*:user.custom_tool_result.content:document.source:url.*": "the harness fetches it under the network policy",
        "*:user.custom_tool_result.content:document.type": "text documents reach the model as text",
        "*:user.custom_tool_result.content:document.title": "kept with the document in the log",
        "*:user.custom_tool_result.content:document.context": "kept with the document in the log",
        "*:user.custom_tool_result.content:document.source:text.*": "text documents reach the model as text",
        "*:user.custom_tool_result.content:search_result.**": "reaches the model as text (title, source, content)",
        "*:system.message.**": "reaches the model as a system note after the event it follows",
    },
    "events.list": {
        "limit": "page size (pagination tests)",
        "page": "the cursor of the next page (pagination tests)",
        "created_at_*": "filters on processed_at",
        "order": "asc or desc",
        "types": "filters events by type",
    },
    "events.stream": {},
    "vaults.create": {"display_name": RT, "metadata": RT},
    "vaults.update": {"display_name": RT, "metadata": RT},
    "vaults.list": _LIST,
    "credentials.create": {
        "display_name": RT,
        "metadata": RT,
        "auth:static_bearer.*": "injected by the egress proxy for the MCP server's host (test_vaults.py)",
        "auth:mcp_oauth.**": "used and refreshed by the harness for the MCP server (test_vaults.py)",
        "auth:environment_variable.**": "injected by the egress proxy, never in the sandbox (vault tests)",
    },
    "credentials.update": {
        "display_name": RT,
        "metadata": RT,
        "vault_id": "the path's vault",
        "auth:static_bearer.*": "a rotated token is used from then on (test_vaults.py)",
        "auth:mcp_oauth.**": "a rotated token is used from then on (test_vaults.py)",
        "auth:environment_variable.**": "a rotated value is used from then on",
    },
    "credentials.list": _LIST,
    "resources.add": {
        "type": RT,
        "file_id": RT,
        "mount_path": RT,
    },
    "resources.list": _LIST,
    "files.upload": {
        "file": "stored in object storage; download returns its bytes (test_files.py)",
        "expires_in_seconds": "sets expires_at; an expired file is gone (test_files.py, gateway files tests)",
    },
    "files.list": {
        "limit": "page size",
        "page": "the cursor of the next page",
        "ids": "only those files (test_files.py)",
        "scope_id": "only one scope's files",
    },
    "skills.create": {
        "files": "stored; the version's archive holds them (test_skills.py)",
        "display_name": RT,
    },
    "skills.list": {
        "limit": "page size",
        "page": "the cursor of the next page",
        "source": "custom lists every skill; Anthropic's sources list none (test_skills.py)",
    },
    "skill_versions.create": {"files": "stored; the version's archive holds them (test_skills.py)"},
    "skill_versions.list": {"limit": "page size", "page": "the cursor of the next page"},
    "memory_stores.create": {"name": RT, "description": RT, "metadata": RT},
    "memory_stores.update": {
        "name": RT,
        "description": RT,
        "metadata": "patches the metadata: a null value removes a key (gateway memory.rs)",
    },
    "memory_stores.list": _LIST,
    "memories.create": {
        "path": RT,
        "content": "stored as the memory's first version; content_sha256 and a view=full read show it (test_memory.py)",
        "view": _MEMORY_VIEW,
    },
    "memories.update": {
        "memory_store_id": "the path's store",
        "path": RT,
        "content": "stored as a new version; content_sha256 and a view=full read show it (test_memory.py)",
        "precondition.type": _PRECONDITION,
        "precondition.content_sha256": _PRECONDITION,
        "view": _MEMORY_VIEW,
    },
    "memories.list": {
        "limit": "page size (gateway memory.rs: a_list_follows_path_order_prefixes_and_depth)",
        "page": "the cursor of the next page (gateway memory.rs: a_list_follows_path_order_prefixes_and_depth)",
        "path_prefix": "only memories below the prefix, whole segments (gateway memory.rs, test_memory.py)",
        "depth": "deeper memories roll up into memory_prefix items (gateway memory.rs)",
        "view": _MEMORY_VIEW,
    },
    "memories.retrieve": {"memory_store_id": "the path's store", "view": _MEMORY_VIEW},
    "memories.delete": {
        "memory_store_id": "the path's store",
        "expected_content_sha256": "deletes only while the content has that hash, else 409 (test_memory.py)",
    },
    "memory_versions.list": {
        "limit": "page size",
        "page": "the cursor of the next page",
        "created_at_*": "filters on created_at (gateway memory.rs)",
        "memory_id": "only that memory's versions, also after it is deleted (gateway memory.rs, test_memory.py)",
        "operation": "only versions of that operation (gateway memory.rs)",
        "api_key_id": "only versions written with that key (gateway memory.rs)",
        "session_id": "only versions a session wrote: none yet, sessions cannot attach stores (gateway memory.rs)",
        "service_account_id": "matches nothing: Corral writes no service-account versions (gateway memory.rs)",
        "view": _MEMORY_VIEW,
    },
    "memory_versions.retrieve": {"memory_store_id": "the path's store", "view": _MEMORY_VIEW},
}

# Headers every method takes.
for _endpoint in HONOURED.values():
    _endpoint.setdefault("betas", "the anthropic-beta header: Corral speaks one version of the API")

# --- what Corral refuses (400 naming the field) ------------------------------------------------------------------

_AGENT_REFUSED = {
    "execution_identity:aws_role": "only service_account",
    "multiagent": "no multi-agent sessions",
    "skills:anthropic": "Anthropic's pre-built skills are not Corral's to ship",
    "model:BetaManagedAgentsModelConfigParams.inference_geo": "the provider's base_url decides",
    "tools:agent_toolset_20260401.configs:*.permission_policy:auto": "no auto policy",
    "tools:agent_toolset_20260401.default_config.permission_policy:auto": "no auto policy",
    "tools:mcp_toolset.default_config.permission_policy:auto": "no auto policy",
    "tools:mcp_toolset.configs.permission_policy:auto": "no auto policy",
    "tools:agent_toolset_20260401.configs:web_*.allowed_domains": "web tool settings are not stored",
    "tools:agent_toolset_20260401.configs:web_*.blocked_domains": "web tool settings are not stored",
    "tools:agent_toolset_20260401.configs:web_fetch.max_content_tokens": "web tool settings are not stored",
    "tools:agent_toolset_20260401.configs:web_fetch.url_sources": "web tool settings are not stored",
    "tools:agent_toolset_20260401.configs:web_search.user_location": "web tool settings are not stored",
}

_CONTENT_REFUSED = {
    "*:user.define_outcome": "no outcome evaluations",
}

REFUSED: dict[str, dict[str, str]] = {
    "agents.create": _AGENT_REFUSED,
    "agents.update": _AGENT_REFUSED,
    "environments.create": {"config:self_hosted": "no self-hosted environments"},
    "environments.update": {"config:self_hosted": "no self-hosted environments"},
    "sessions.create": {
        "agent:agent_with_overrides": "create an agent version instead",
        "resources:memory_store": "sessions cannot attach memory stores yet (the memory API is served)",
        **_CONTENT_REFUSED,
    },
    "sessions.update": {"agent": "a session's agent cannot change", "vault_ids": "fixed at create"},
    "events.send": {"*:user.tool_result": "no self-hosted environments", **_CONTENT_REFUSED},
    "events.stream": {"event_deltas": "no streaming deltas yet"},
}

for _name in HONOURED:
    REFUSED.setdefault(_name, {})["workspace_id"] = "one namespace per key: no workspaces"

# --- example values where the type's smallest value is not a valid one --------------------------------------------

LEAVES: dict[str, Any] = {
    # The objects of the test's context (callables of the Context).
    ".agent": lambda c: c.agent,
    ".agent.id": lambda c: c.agent,
    ".agent.version": 1,
    ".environment_id": lambda c: c.environment,
    ".vault_ids": lambda c: [c.vault],
    ".vault_id": lambda c: c.vault,
    "**.events.result": "deny",
    "**mcp_servers.url": "https://mcp.example.com/mcp",
    "**mcp_servers.name": "docs",
    "**mcp_server_name": "docs",
    "**.url": "https://example.com/x",
    "**mount_path": "/workspace/fields.txt",
    "**file_id": lambda c: c.file,
    "**.limit": 5,
    "**page": None,  # a cursor comes from a previous page: sent as absent
    "**created_at_*": "2026-01-01T00:00:00Z",
    "**.budget.max_list_cost.amount": "100",
    "**.max_list_cost.currency": "USD",
    "**input_schema.type": "object",
    "**input_schema.properties": {"q": {"type": "string"}},
    "**input_schema.required": ["q"],
    "**allowed_hosts": ["example.com"],
    "**source.data": "aGk=",
    "**tool_use_id": "sevt_00000000000000000000000000",
    "**custom_tool_use_id": "sevt_00000000000000000000000000",
    "**mcp_server_url": "https://mcp.example.com/mcp",
    "**token_endpoint": "https://auth.example.com/token",
    "**expires_at": "2030-01-01T00:00:00Z",
    "**.metadata": {"k": "v"},
    "**.statuses": ["idle"],
    "**.types": ["user.message"],
    "**agent_version": 1,
    ".file": ("fields.txt", b"fields", "text/plain"),
    ".files": [("fields-skill/SKILL.md", b"---\nname: fields-skill\ndescription: d\n---\n", "text/markdown")],
    ".skills.skill_id": lambda c: c.skill,
    ".skills.version": lambda c: c.skill_version,
    ".source": "custom",
    ".expires_in_seconds": 3600,
    ".ids": ["file_00000000000000000000000000"],
    "**session_thread_id": None,
    ".memory_store_id": lambda c: c.memory_store,
    # Each memory written gets a path of its own (a taken path is a 409), and every content is "fields", so that
    # the hash a precondition expects is known.
    ".path": lambda c: f"/fields/{uuid.uuid4().hex}.md",
    ".content": "fields",
    "**content_sha256": hashlib.sha256(b"fields").hexdigest(),
    ".path_prefix": "/fields/",
}


def _regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^.:]*"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def _match(table: dict[str, Any], path: str, subtree: bool) -> str | None:
    for pattern in table:
        rx = _regex(pattern)
        if rx.fullmatch(path) or (subtree and (m := rx.match(path)) and path[m.end() :][:1] in (".", ":")):
            return pattern
    return None


_NO_VALUE = object()


def _plain(td: Any, path: str) -> str:
    """A path without its union members, with a leading "." so that "**.x" patterns match top-level fields too."""
    return "." + sdk_fields.plain(td, path)


def _valid(plain: str, ctx: "Context") -> Any:
    for pattern, value in LEAVES.items():
        if _regex(pattern).fullmatch(plain):
            return value(ctx) if callable(value) else value
    return _NO_VALUE


def _leaf(path: str, td: Any, ctx: "Context") -> Any:
    value = _valid(_plain(td, path), ctx)
    return sdk_fields.example(sdk_fields.leaf_type(td, path)) if value is _NO_VALUE else value


def _fix(value: Any, plain: str, keep: str, ctx: "Context") -> Any:
    """Replaces the placeholder values of required fields around the field under test with valid ones."""
    if plain == keep:
        return value
    valid = _valid(plain, ctx)
    if valid is not _NO_VALUE and valid is not None and not (isinstance(value, dict) and isinstance(valid, str)):
        return valid
    if isinstance(value, dict):
        fixed = {k: _fix(v, f"{plain}.{k}", keep, ctx) for k, v in value.items()}
        if fixed.get("type") == "document" and not keep.startswith(f"{plain}.source"):
            fixed["source"] = {"type": "text", "media_type": "text/plain", "data": "d"}
        source = fixed.get("source")
        if fixed.get("type") in ("image", "document") and isinstance(source, dict):
            image = fixed["type"] == "image"
            if source.get("type") == "base64":
                # Inline data of a type its block takes (the SDK types media_type as any string).
                source["media_type"] = "image/png" if image else "application/pdf"
            if source.get("type") == "file" and image:
                source["file_id"] = ctx.image_file  # an image block takes an image file
        return fixed
    if isinstance(value, list):
        return [_fix(v, plain, keep, ctx) for v in value]
    return value


# --- the endpoints ----------------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    params: Any
    base: Callable[["Context"], dict[str, Any]]
    call: Callable[[anthropic.Anthropic, "Context", dict[str, Any]], Any]


@dataclass
class Context:
    agent: str
    environment: str
    session: str
    vault: str
    credential: str
    file: str
    skill: str
    skill_version: str
    image_file: str
    memory_store: str
    memory: str
    memory_version: str


def _dump(response: Any) -> Any:
    if hasattr(response, "model_dump"):
        return response.model_dump(mode="json")
    return None


def _stream(client: anthropic.Anthropic, ctx: Context, kw: dict[str, Any]) -> None:
    with client.beta.sessions.events.stream(ctx.session, **kw) as stream:
        stream.response.close()


def _add_resource(client: anthropic.Anthropic, ctx: Context, kw: dict[str, Any]) -> Any:
    """Adds a file resource and removes it again, so that each request finds its mount path free."""
    added = client.beta.sessions.resources.add(ctx.session, **kw)
    client.beta.sessions.resources.delete(added.id, session_id=ctx.session)
    return added


def _create_memory(client: anthropic.Anthropic, ctx: Context, kw: dict[str, Any]) -> Any:
    """Creates a memory and deletes it again, so that the store does not fill up."""
    made = client.beta.memory_stores.memories.create(ctx.memory_store, **kw)
    client.beta.memory_stores.memories.delete(made.id, memory_store_id=ctx.memory_store)
    return made


def _delete_memory(client: anthropic.Anthropic, ctx: Context, kw: dict[str, Any]) -> Any:
    """Deletes a memory made for the purpose (with the content the expected hash is of)."""
    made = client.beta.memory_stores.memories.create(
        ctx.memory_store, path=f"/fields/{uuid.uuid4().hex}.md", content=LEAVES[".content"]
    )
    return client.beta.memory_stores.memories.delete(made.id, **kw)


def _scripted(name: str = "fields") -> dict[str, Any]:
    return {"name": name, "model": "claude-sonnet-4-5"}


ENDPOINTS = [
    Endpoint("agents.create", agent_create_params.AgentCreateParams, lambda c: _scripted(),
             lambda cl, c, kw: cl.beta.agents.create(**kw)),
    Endpoint("agents.update", agent_update_params.AgentUpdateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.agents.update(c.agent, **kw)),
    Endpoint("agents.list", agent_list_params.AgentListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.agents.list(**kw)),
    Endpoint("environments.create", environment_create_params.EnvironmentCreateParams, lambda c: {"name": "fields"},
             lambda cl, c, kw: cl.beta.environments.create(**kw)),
    Endpoint("environments.update", environment_update_params.EnvironmentUpdateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.environments.update(c.environment, **kw)),
    Endpoint("environments.list", environment_list_params.EnvironmentListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.environments.list(**kw)),
    Endpoint("sessions.create", session_create_params.SessionCreateParams,
             lambda c: {"agent": c.agent, "environment_id": c.environment},
             lambda cl, c, kw: cl.beta.sessions.create(**kw)),
    Endpoint("sessions.update", session_update_params.SessionUpdateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.sessions.update(c.session, **kw)),
    Endpoint("sessions.list", session_list_params.SessionListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.sessions.list(**kw)),
    Endpoint("resources.add", resource_add_params.ResourceAddParams, lambda c: {"type": "file", "file_id": c.file},
             _add_resource),
    Endpoint("resources.list", resource_list_params.ResourceListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.sessions.resources.list(c.session, **kw)),
    # resources.update takes only a repository's authorization_token, which it rotates (gateway tests:
    # session_resources.rs; e2e repositories: the rotated token clones).
    Endpoint("events.send", event_send_params.EventSendParams, lambda c: {},
             lambda cl, c, kw: cl.beta.sessions.events.send(c.session, **kw)),
    Endpoint("events.list", event_list_params.EventListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.sessions.events.list(c.session, **kw)),
    Endpoint("events.stream", event_stream_params.EventStreamParams, lambda c: {}, _stream),
    Endpoint("vaults.create", vault_create_params.VaultCreateParams, lambda c: {"display_name": "fields"},
             lambda cl, c, kw: cl.beta.vaults.create(**kw)),
    Endpoint("vaults.update", vault_update_params.VaultUpdateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.vaults.update(c.vault, **kw)),
    Endpoint("vaults.list", vault_list_params.VaultListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.vaults.list(**kw)),
    Endpoint("credentials.create", credential_create_params.CredentialCreateParams,
             lambda c: {"auth": {"type": "static_bearer", "token": "t0", "mcp_server_url": "https://mcp.example.com/mcp"}},
             lambda cl, c, kw: cl.beta.vaults.credentials.create(c.vault, **kw)),
    Endpoint("credentials.update", credential_update_params.CredentialUpdateParams, lambda c: {"vault_id": c.vault},
             lambda cl, c, kw: cl.beta.vaults.credentials.update(c.credential, **kw)),
    Endpoint("credentials.list", credential_list_params.CredentialListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.vaults.credentials.list(c.vault, **kw)),
    Endpoint("files.upload", file_upload_params.FileUploadParams, lambda c: {},
             lambda cl, c, kw: cl.beta.files.upload(**kw)),
    Endpoint("files.list", file_list_params.FileListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.files.list(**kw)),
    Endpoint("skills.create", skill_create_params.SkillCreateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.skills.create(**kw)),
    Endpoint("skills.list", skill_list_params.SkillListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.skills.list(**kw)),
    Endpoint("skill_versions.create", version_create_params.VersionCreateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.skills.versions.create(c.skill, **kw)),
    Endpoint("skill_versions.list", version_list_params.VersionListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.skills.versions.list(c.skill, **kw)),
    # memory_stores.retrieve, archive and delete and memory_versions.redact take no parameters but the path's ids.
    Endpoint("memory_stores.create", memory_store_create_params.MemoryStoreCreateParams, lambda c: {"name": "fields"},
             lambda cl, c, kw: cl.beta.memory_stores.create(**kw)),
    Endpoint("memory_stores.update", memory_store_update_params.MemoryStoreUpdateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.memory_stores.update(c.memory_store, **kw)),
    Endpoint("memory_stores.list", memory_store_list_params.MemoryStoreListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.memory_stores.list(**kw)),
    Endpoint("memories.create", memory_create_params.MemoryCreateParams, lambda c: {}, _create_memory),
    Endpoint("memories.update", memory_update_params.MemoryUpdateParams, lambda c: {},
             lambda cl, c, kw: cl.beta.memory_stores.memories.update(c.memory, **kw)),
    Endpoint("memories.list", memory_list_params.MemoryListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.memory_stores.memories.list(c.memory_store, **kw)),
    Endpoint("memories.retrieve", memory_retrieve_params.MemoryRetrieveParams, lambda c: {},
             lambda cl, c, kw: cl.beta.memory_stores.memories.retrieve(c.memory, **kw)),
    Endpoint("memories.delete", memory_delete_params.MemoryDeleteParams, lambda c: {}, _delete_memory),
    Endpoint("memory_versions.list", memory_version_list_params.MemoryVersionListParams, lambda c: {},
             lambda cl, c, kw: cl.beta.memory_stores.memory_versions.list(c.memory_store, **kw)),
    Endpoint("memory_versions.retrieve", memory_version_retrieve_params.MemoryVersionRetrieveParams, lambda c: {},
             lambda cl, c, kw: cl.beta.memory_stores.memory_versions.retrieve(c.memory_version, **kw)),
]

# Paths whose request needs a companion field to be valid at all (an MCP server must be used by a toolset).
COMPANIONS: dict[str, dict[str, Any]] = {
    "mcp_servers": {"tools": [{"type": "mcp_toolset", "mcp_server_name": "docs"}]},
    "tools:mcp_toolset": {"mcp_servers": [{"type": "url", "name": "docs", "url": "https://mcp.example.com/mcp"}]},
}


def _request(endpoint: Endpoint, ctx: Context, path: str) -> dict[str, Any]:
    leaf = _leaf(path, endpoint.params, ctx)
    body = sdk_fields.value_at(endpoint.params, path, leaf)
    kw = {**body, **endpoint.base(ctx)}
    top = path.split(".")[0].split(":")[0]
    kw[top] = body[top]
    kw = {k: _fix(v, f".{k}", _plain(endpoint.params, path), ctx) for k, v in kw.items()}
    if "system.message" in path:
        kw["events"] = [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}, *kw["events"]]
    if endpoint.name.startswith("agents."):
        for prefix, extra in COMPANIONS.items():
            if path.startswith(prefix):
                for k, v in extra.items():
                    kw.setdefault(k, v)
    if endpoint.name == "agents.update":
        # Earlier updates leave tools and MCP servers behind: replace both, so each request stands alone.
        kw.setdefault("tools", [])
        kw.setdefault("mcp_servers", [])
    if endpoint.name.startswith("environments.") and "packages" in path:
        kw["config"]["networking"] = {"type": "unrestricted"}
    if endpoint.name == "sessions.list" and path == "agent_version":
        kw["agent_id"] = ctx.agent
    if endpoint.name == "memories.update" and "precondition" in kw:
        # The SDK types the hash as optional; a precondition without it is a 400 naming it.
        kw["precondition"].setdefault("content_sha256", LEAVES["**content_sha256"])
    return {k: v for k, v in kw.items() if v is not None}


def _walk_response(response: Any, path: str) -> Any:
    node = response
    for segment in path.split("."):
        name = segment.split(":")[0]
        while isinstance(node, list):
            node = node[0] if node else None
        if not isinstance(node, dict) or name not in node:
            return None
        node = node[name]
    return node


def _all_fields() -> list[tuple[Endpoint, str]]:
    return [(e, path) for e in ENDPOINTS for path in sdk_fields.fields(e.params)]


def test_every_sdk_field_is_classified_and_every_entry_is_an_sdk_field() -> None:
    unclassified = [
        f"{e.name}: {p}"
        for e, p in _all_fields()
        if not _match(HONOURED.get(e.name, {}), p, False) and not _match(REFUSED.get(e.name, {}), p, True)
    ]
    assert not unclassified, "SDK fields neither honoured nor refused:\n  " + "\n  ".join(unclassified)
    # A table shared by several endpoints (agents create and update) is stale where it matches none of theirs.
    fields: dict[int, list[str]] = {}
    names: dict[int, list[str]] = {}
    for table in (HONOURED, REFUSED):
        for e in ENDPOINTS:
            if e.name in table:
                fields.setdefault(id(table[e.name]), []).extend(sdk_fields.fields(e.params))
                names.setdefault(id(table[e.name]), []).append(e.name)
    stale = [
        f"{'/'.join(names[id(patterns)])}: {pattern}"
        for table in (HONOURED, REFUSED)
        for patterns in {id(p): p for p in table.values()}.values()
        for pattern in patterns
        if not any(_regex(pattern).match(p) for p in fields[id(patterns)])
    ]
    assert not stale, "entries that match no SDK field:\n  " + "\n  ".join(stale)


@pytest.fixture(scope="module")
def ctx(client: anthropic.Anthropic) -> Context:
    agent = client.beta.agents.create(**_scripted("fields-agent"))
    environment = client.beta.environments.create(name="fields-env")
    session = client.beta.sessions.create(
        agent=agent.id,
        environment_id=environment.id,
        budget={"type": "limit", "max_list_cost": {"amount": "50", "currency": "USD"}},
    )
    vault = client.beta.vaults.create(display_name="fields")
    credential = client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "token": "t0", "mcp_server_url": "https://mcp.example.com/mcp"}
    )
    file = client.beta.files.upload(file=("fields.txt", b"fields", "text/plain"))
    skill = client.beta.skills.create(files=LEAVES[".files"])
    image = client.beta.files.upload(file=("fields.png", PNG, "image/png"))
    store = client.beta.memory_stores.create(name="fields-store")
    memory = client.beta.memory_stores.memories.create(store.id, path="/fields/memory.md", content=LEAVES[".content"])
    return Context(
        agent.id,
        environment.id,
        session.id,
        vault.id,
        credential.id,
        file.id,
        skill.id,
        skill.latest_version_id,
        image.id,
        store.id,
        memory.id,
        memory.memory_version_id,
    )


@pytest.mark.parametrize("endpoint,path", _all_fields(), ids=[f"{e.name}:{p}" for e, p in _all_fields()])
def test_field_is_honoured_or_refused_by_name(
    client: anthropic.Anthropic, ctx: Context, endpoint: Endpoint, path: str
) -> None:
    refused = _match(REFUSED.get(endpoint.name, {}), path, True)
    honoured = _match(HONOURED.get(endpoint.name, {}), path, False)
    assert refused or honoured, f"{endpoint.name}: {path} is not classified"
    kw = _request(endpoint, ctx, path)
    if endpoint.name == "agents.update" and path == "version":
        kw["version"] = client.beta.agents.retrieve(ctx.agent).version
    if endpoint.name == "credentials.update" and path.startswith("auth:"):
        # A credential keeps its kind: update one of the kind under test.
        kind = path.split(":")[1].split(".")[0]
        create = next(e for e in ENDPOINTS if e.name == "credentials.create")
        like = path if path in sdk_fields.fields(create.params) else f"auth:{kind}.type"
        made = client.beta.vaults.credentials.create(ctx.vault, **_request(create, ctx, like))
        ctx = dataclasses.replace(ctx, credential=made.id)
    if refused:
        field = re.split(r"[.:]", refused.replace("*", ""))[0] or refused
        named = [s for s in re.split(r"[.:]", refused) if s and "*" not in s]
        with pytest.raises(anthropic.BadRequestError) as err:
            endpoint.call(client, ctx, kw)
        message = err.value.message
        assert any(n in message for n in named[-2:] + [field]), (
            f"{endpoint.name} {path}: the 400 does not name the field ({refused}): {message}"
        )
        return
    response = endpoint.call(client, ctx, kw)
    how = HONOURED[endpoint.name][honoured]
    if how == RT:
        sent = _walk_response(kw, path)
        got = _walk_response(_dump(response), path)
        assert got == sent, f"{endpoint.name} {path}: sent {sent!r}, the response shows {got!r}"
