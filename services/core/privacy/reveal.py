"""Opening an answer's sealed contacts just before it is sent (``privacy``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from services.core import privacy

KeyLookup = Callable[[Collection[str]], dict[str, bytes]]

_MEMBER = re.compile(rb'([{,]\s*)"sealed"\s*:\s*"(ov1\.[0-9a-f]{32}\.[net]{1,3}\.[A-Za-z0-9_-]+)"')
"""A sealed contact's member in a JSON text, after the ``{`` or ``,`` before it (a string
cannot hold an unescaped ``"``, so this is a member, never text inside a value). Its value holds
no character JSON escapes, and only a contact has a ``sealed`` member (every other object of
the contract forbids unknown fields), so the text can be rewritten without parsing it."""


def reveal_json(body: bytes, lookup: KeyLookup) -> bytes | None:
    """``body`` (a JSON text) with each sealed contact's ``sealed`` member replaced by the
    fields it sealed, opened with the keys ``lookup`` finds (one call; ``[erased]`` when a key
    is gone); None when it holds none. The same answer as ``reveal``, without a parse."""
    subjects = {m.decode() for m in re.findall(rb'"sealed"\s*:\s*"ov1\.([0-9a-f]{32})\.', body)}
    if not subjects:
        return None
    openers = privacy.Openers(lookup(subjects))

    def members(found: re.Match[bytes]) -> bytes:
        text = openers.members(found.group(2).decode())
        return found.group(0) if text is None else found.group(1) + text

    return _MEMBER.sub(members, body)


def reveal(value: Any, lookup: KeyLookup | None, marker: str = "") -> tuple[Any, bool]:
    """``value`` (plain JSON types) with every object holding a ``sealed`` contact value
    replaced by the object without it and with the fields it sealed: opened with the keys
    ``lookup`` finds (one call for the whole answer; each field ``[erased]`` when its key is
    gone), or, without ``lookup``, each field ``marker`` (nothing is opened). Whether any was."""
    subjects = keys_of(value)
    if not subjects:
        return value, False
    openers = None if lookup is None else privacy.Openers(lookup(subjects))
    return _walk(value, openers, marker), True


def _walk(value: Any, openers: privacy.Openers | None, marker: str) -> Any:
    if isinstance(value, list):
        return [_walk(v, openers, marker) for v in value]
    if not isinstance(value, dict):
        return value
    sealed = value.get("sealed")
    named = privacy.parts(sealed) if isinstance(sealed, str) else None
    out = {k: _walk(v, openers, marker) for k, v in value.items()
           if named is None or k != "sealed"}  # fmt: skip
    if named is not None:
        assert isinstance(sealed, str)
        out.update(dict.fromkeys(named[1], marker) if openers is None else openers.open(sealed))
    return out


def keys_of(value: Any) -> set[str]:
    """Every subject sealed somewhere in ``value`` (plain JSON types)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            sealed = item.get("sealed")
            if isinstance(sealed, str):
                named = privacy.parts(sealed)
                if named is not None:
                    found.add(named[0])
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return found
