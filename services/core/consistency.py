"""Consistency tokens: what a client just wrote, so a later read can wait until it is visible.

A token names, per partition, the highest log offset written: ``v1.<partition>-<offset>,...``
(``v1.`` alone for a write that touched nothing new). It is opaque to clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_PREFIX = "v1."
TOKEN_HEADER = "X-Consistency-Token"
STALE_HEADER = "X-OneVoice-Stale"


def token_for(positions: Iterable[tuple[int, int]]) -> str:
    """The token covering every ``(partition, offset)`` given."""
    highest: dict[int, int] = {}
    for partition, offset in positions:
        highest[partition] = max(highest.get(partition, -1), offset)
    return _PREFIX + ",".join(f"{p}-{o}" for p, o in sorted(highest.items()))


def parse_token(token: str) -> dict[int, int]:
    """``partition -> offset`` from a token; ``ValueError`` when it is not one of ours."""
    if not token.startswith(_PREFIX) or len(token) > 4096:
        raise ValueError("not a consistency token issued by this service")
    positions: dict[int, int] = {}
    body = token[len(_PREFIX) :]
    for part in filter(None, body.split(",")):
        partition, sep, offset = part.partition("-")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError("not a consistency token issued by this service")
        positions[int(partition)] = int(offset)
    return positions


def reached(applied: Mapping[int, int], wanted: Mapping[int, int]) -> bool:
    """True when every wanted offset is below the applied next-offset of its partition."""
    return all(applied.get(p, 0) > o for p, o in wanted.items())
