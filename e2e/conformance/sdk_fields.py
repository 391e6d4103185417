"""The request fields of the official SDK's parameter types, as paths, and example values for them.

A path names a field the way an error message does, with a union member chosen by its `type` (or its Python type):
`tools:custom.input_schema.properties`, `model:config.speed`, `events:user.message.content:image.source:url.url`.
`[]` is not written: a list's element fields hang off the list's name. `fields(T)` walks a TypedDict `T` down to
its leaves (a field whose type is no TypedDict and no union of them); `value_at(T, path, leaf)` builds the smallest
value of `T` (its required fields) with `path` set to `leaf`.
"""

from __future__ import annotations

import collections.abc
import typing
from typing import Any, Literal, Union

import typing_extensions

_WRAPPERS = {typing_extensions.Required, typing_extensions.NotRequired, typing.Required, typing.NotRequired}


def _strip(tp: Any) -> tuple[Any, str | None]:
    """The type under Required/NotRequired/Optional/Annotated, and the field's wire alias if the SDK renames it."""
    alias = None
    while True:
        origin = typing_extensions.get_origin(tp)
        if origin in _WRAPPERS:
            tp = typing_extensions.get_args(tp)[0]
        elif origin is typing_extensions.Annotated:
            for meta in tp.__metadata__:
                alias = getattr(meta, "alias", None) or alias
            tp = tp.__origin__
        elif origin is Union and type(None) in typing_extensions.get_args(tp):
            rest = [a for a in typing_extensions.get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return tp, alias


def is_typeddict(tp: Any) -> bool:
    return typing_extensions.is_typeddict(tp)


def _element(tp: Any) -> Any | None:
    """The element type of a list-like type (Iterable, List, Sequence, SequenceNotStr), else None."""
    origin = typing_extensions.get_origin(tp)
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence) or getattr(origin, "__name__", "") in (
        "SequenceNotStr",
    ):
        args = typing_extensions.get_args(tp)
        return args[0] if args else Any
    if getattr(tp, "__name__", "") == "SequenceNotStr":
        return Any
    return None


def hints(td: Any) -> dict[str, tuple[Any, str, bool]]:
    """A TypedDict's fields: Python name -> (type, wire name, required)."""
    out = {}
    raw = typing_extensions.get_type_hints(td, include_extras=True)
    for name, tp in raw.items():
        inner, alias = _strip(tp)
        out[name] = (inner, alias or name, _required(tp, getattr(td, "__total__", True)))
    return out


def _required(tp: Any, total: bool) -> bool:
    """Whether a TypedDict field is required: `Required[...]` anywhere in its wrappers, else the class's totality."""
    while True:
        origin = typing_extensions.get_origin(tp)
        if origin in (typing_extensions.Required, typing.Required):
            return True
        if origin in (typing_extensions.NotRequired, typing.NotRequired):
            return False
        if origin is typing_extensions.Annotated:
            tp = tp.__origin__
            continue
        return total


def _variant_name(tp: Any) -> str:
    """How a union member is named in a path: its `type` literal, else its Python type's name."""
    tp, _ = _strip(tp)
    if is_typeddict(tp):
        kind = hints(tp).get("type")
        if kind and typing_extensions.get_origin(kind[0]) is Literal:
            return str(typing_extensions.get_args(kind[0])[0])
        return tp.__name__
    if typing_extensions.get_origin(tp) is Literal:
        return "literal"
    return getattr(tp, "__name__", str(tp))


def _members(tp: Any) -> list[Any] | None:
    """The members of a union that holds at least one TypedDict (or None)."""
    tp, _ = _strip(tp)
    if typing_extensions.get_origin(tp) is Union:
        members = [_strip(a)[0] for a in typing_extensions.get_args(tp)]
        if any(is_typeddict(m) or _element(m) is not None for m in members):
            return members
    return None


def _walk(tp: Any, prefix: str, out: list[str], depth: int) -> None:
    tp, _ = _strip(tp)
    if depth > 12:
        out.append(prefix)
        return
    element = _element(tp)
    if element is not None:
        _walk(element, prefix, out, depth + 1)
        return
    members = _members(tp)
    if members is not None:
        for m in members:
            _walk(m, f"{prefix}:{_variant_name(m)}", out, depth + 1)
        return
    if is_typeddict(tp):
        for name, (inner, wire, _) in hints(tp).items():
            _walk(inner, f"{prefix}.{wire}" if prefix else wire, out, depth + 1)
        return
    out.append(prefix)


def fields(td: Any) -> list[str]:
    """Every leaf field path of the TypedDict `td`."""
    out: list[str] = []
    _walk(td, "", out, 0)
    return out


def example(tp: Any) -> Any:
    """The smallest value of `tp`: required fields only, the first union member, one list element."""
    tp, _ = _strip(tp)
    element = _element(tp)
    if element is not None:
        return [example(element)]
    origin = typing_extensions.get_origin(tp)
    if origin is Literal:
        return typing_extensions.get_args(tp)[0]
    if origin is Union:
        return example(typing_extensions.get_args(tp)[0])
    if origin in (dict, collections.abc.Mapping) or tp in (dict, typing.Dict):  # noqa: UP006
        return {"k": "v"}
    if is_typeddict(tp):
        return {wire: example(inner) for name, (inner, wire, req) in hints(tp).items() if req}
    return {str: "x", int: 1, float: 1.0, bool: True}.get(tp, "x")


def _python_name(td: Any, wire: str) -> str:
    for name, (_, w, _) in hints(td).items():
        if w == wire:
            return name
    raise KeyError(wire)


def _take_name(rest: str) -> tuple[str, str]:
    """`name.more` or `name:variant...` -> (name, what follows for the field's type)."""
    for i, c in enumerate(rest):
        if c in ".:":
            return rest[:i], rest[i + 1 :] if c == "." else rest[i:]
    return rest, ""


def _take_variant(tp: Any, rest: str) -> tuple[Any, str]:
    """`:user.message.content...` -> (the member named `user.message`, `content...`): names may hold dots, so the
    longest member name that the path continues from wins."""
    names = [(m, _variant_name(m)) for m in _members(tp) or []]
    found = [(m, n) for m, n in names if rest == n or rest.startswith(n + ".") or rest.startswith(n + ":")]
    if not found:
        raise KeyError(f"no union member {rest!r} in {tp}")
    member, name = max(found, key=lambda f: len(f[1]))
    after = rest[len(name) :]
    return member, after[1:] if after.startswith(".") else after


def _build(tp: Any, path: str, leaf: Any) -> Any:
    tp, _ = _strip(tp)
    if not path:
        return leaf
    element = _element(tp)
    if element is not None:
        return [_build(element, path, leaf)]
    if path.startswith(":"):
        member, rest = _take_variant(tp, path[1:])
        return _build(member, rest, leaf)
    assert is_typeddict(tp), f"{path}: not an object"
    name, rest = _take_name(path)
    value = example(tp)
    value[name] = _build(hints(tp)[_python_name(tp, name)][0], rest, leaf)
    return value


def value_at(td: Any, path: str, leaf: Any) -> dict[str, Any]:
    """The smallest value of the TypedDict `td` with the field at `path` set to `leaf` (wire names)."""
    return _build(td, path, leaf)


def leaf_type(td: Any, path: str) -> Any:
    """The type of the leaf at `path`."""
    tp: Any = td
    rest = path
    while rest:
        tp, _ = _strip(tp)
        element = _element(tp)
        if element is not None:
            tp = element
        elif rest.startswith(":"):
            tp, rest = _take_variant(tp, rest[1:])
        else:
            name, rest = _take_name(rest)
            tp = hints(tp)[_python_name(tp, name)][0]
    return tp


def plain(td: Any, path: str) -> str:
    """`path` without its union members (`events:user.message.content:text.text` -> `events.content.text`)."""
    tp: Any = td
    rest = path
    names = []
    while rest:
        tp, _ = _strip(tp)
        element = _element(tp)
        if element is not None:
            tp = element
        elif rest.startswith(":"):
            tp, rest = _take_variant(tp, rest[1:])
        else:
            name, rest = _take_name(rest)
            names.append(name)
            tp = hints(tp)[_python_name(tp, name)][0]
    return ".".join(names)
