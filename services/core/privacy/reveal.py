"""Opening an answer's sealed contacts just before it is sent (``privacy``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from services.core import privacy
from services.core.privacy.vault import keys_of

KeyLookup = Callable[[Collection[str]], dict[str, bytes]]


def reveal(value: Any, lookup: KeyLookup | None, marker: str = "") -> tuple[Any, bool]:
    """``value`` (plain JSON types) with every object holding a ``sealed`` contact value
    replaced by the object without it and with the fields it sealed: opened with the keys
    ``lookup`` finds (one call for the whole answer; each field ``[erased]`` when its key is
    gone), or, without ``lookup``, each field ``marker`` (nothing is opened). Whether any was."""
    subjects = keys_of(value)
    if not subjects:
        return value, False
    keys = None if lookup is None else lookup(subjects)
    return _walk(value, keys, marker), True


def _walk(value: Any, keys: dict[str, bytes] | None, marker: str) -> Any:
    if isinstance(value, list):
        return [_walk(v, keys, marker) for v in value]
    if not isinstance(value, dict):
        return value
    sealed = value.get("sealed")
    named = privacy.parts(sealed) if isinstance(sealed, str) else None
    out = {k: _walk(v, keys, marker) for k, v in value.items()
           if named is None or k != "sealed"}  # fmt: skip
    if named is not None:
        assert isinstance(sealed, str)
        if keys is None:
            out.update(dict.fromkeys(named[1], marker))
        else:
            out.update(privacy.opened(sealed, keys.get(named[0])))
    return out
