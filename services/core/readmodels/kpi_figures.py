"""The KPI report's figures of whole periods, kept: what a request would otherwise count again
for every period it shows (``reports.kpi``).

A row holds one period's figures per group, computed at a moment ``as_of_us`` — its flows
(accounts touched, executive touches, complaints opened and recurring, commitments kept on
time, handoffs followed up in time, the CSAT scores) and, for a period that had not ended by
then, its states at that moment (``has_states``; an ended period's states are at its end,
``state_figures``). A read at ``now`` uses it while ``as_of_us <= now < until_us``:

- **the clock.** A figure changes with no new event only when a fact dated at or after
  ``as_of_us`` comes due (a future-dated one: ``until_us`` is at most the next such fact time,
  asked of every fact table a figure reads) or, for states, when an account's health may change
  on its own (``until_us`` is at most the earliest ``valid_until_us`` of the health cache, which
  every account had a valid row of, held still while they were summed:
  ``health_cache.held_still``); a period's follow-ups count until the end of its last signal's
  window (``settles_us``), after which nothing later changes an ended period.
- **new facts.** A batch deletes every row that depends on a moment at or after its earliest
  change (``forget``, beside ``state_figures.forget``, under the same lock: ``depends_until_us``
  is the period's ``settles_us`` for an ended period, and the end of time for one that has not
  ended, whose states depend on every fact), and an ``account.registered``, a switch, a
  rollback and a replay delete them all.
- **the rules.** The rules (``key``: the policy, the business time zone and this module's
  ``VERSION``), the grouping and the at-risk threshold are the key, with the period's bounds.
  Raise ``VERSION`` with any change to how a figure is counted, so a release never reads
  another's rows.

The refresher computes the rows (``health_refresh``) under ``state_figures.computing``, so no
batch that changes their inputs is in flight; reads compute what no row answers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
)

from services.core.readmodels.reports.kpi_groups import Figures
from services.core.readmodels.reports.periods import Span, span_of
from services.core.readmodels.schema import METADATA
from services.core.view_rules import AsOf

TABLE = Table(
    "kpi_period_figures",
    METADATA,
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("group_by", String(16), nullable=False),
    Column("policy", String(32), nullable=False),  # key(health_cache.policy_key)
    Column("at_risk_below", Integer, nullable=False),
    Column("as_of_us", BigInteger, nullable=False),  # the moment the figures are of
    Column("until_us", BigInteger, nullable=False),  # they answer for [as_of_us, until_us)
    Column("depends_until_us", BigInteger, nullable=False),  # a fact up to here changes them
    Column("has_states", Boolean, nullable=False),
    Column("figures", Text, nullable=False),  # JSON: {"counts": [[g, {m: n}]], "scores": ...}
    Column("computed_us", BigInteger, nullable=False),  # wall clock, for operators
    PrimaryKeyConstraint("start_us", "end_us", "group_by", "policy", "at_risk_below"),
)

EVER = -(2**63)
END_OF_TIME = 2**63 - 1
VERSION = 1


def key(policy: str) -> str:
    """The key column for figures counted under ``policy`` (``health_cache.policy_key``) by
    this release's ``VERSION``."""
    return hashlib.sha256(f"kpi-periods {VERSION}|{policy}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Kept:
    figures: Figures
    has_states: bool


def to_json(figures: Figures) -> str:
    def order(g: str | None) -> tuple[bool, str]:
        return g is None, g or ""

    counts = [
        [g, dict(sorted(c.items()))]
        for g, c in sorted(figures.counts.items(), key=lambda kv: order(kv[0]))
    ]
    scores = [[g, list(s)] for g, s in sorted(figures.scores.items(), key=lambda kv: order(kv[0]))]
    return json.dumps({"counts": counts, "scores": scores}, ensure_ascii=False)


def from_json(stored: str) -> Figures:
    data = json.loads(stored)
    figures = Figures()
    for g, counts in data["counts"]:
        figures.counts[g].update(counts)
    for g, (total, n) in data["scores"]:
        figures.scores[g] = [int(total), int(n)]
    return figures


def read(conn: Connection, spans: Sequence[tuple[int, int]], group_by: str, policy: str,
         at_risk_below: int, now_us: int) -> dict[tuple[int, int], Kept]:  # fmt: skip
    """The rows of those ``(start, end)`` periods that answer for ``now_us``."""
    if not spans:
        return {}
    t = TABLE.c
    rows = conn.execute(select(t.start_us, t.end_us, t.has_states, t.figures).where(
        tuple_(t.start_us, t.end_us).in_([tuple(s) for s in spans]), t.group_by == group_by,
        t.policy == policy, t.at_risk_below == at_risk_below, t.as_of_us <= now_us,
        t.until_us > now_us))  # fmt: skip
    return {(int(r[0]), int(r[1])): Kept(from_json(r[3]), bool(r[2])) for r in rows}


def store(conn: Connection, start_us: int, end_us: int, group_by: str, policy: str,
          at_risk_below: int, *, as_of_us: int, until_us: int, depends_until_us: int,
          has_states: bool, figures: Figures, computed_us: int) -> None:  # fmt: skip
    """Keep one period's figures, after ``state_figures.computing`` said yes."""
    t = TABLE.c
    conn.execute(delete(TABLE).where(t.start_us == start_us, t.end_us == end_us,
                                     t.group_by == group_by, t.policy == policy,
                                     t.at_risk_below == at_risk_below))  # fmt: skip
    conn.execute(TABLE.insert().values(
        start_us=start_us, end_us=end_us, group_by=group_by, policy=policy,
        at_risk_below=at_risk_below, as_of_us=as_of_us, until_us=until_us,
        depends_until_us=depends_until_us, has_states=has_states, figures=to_json(figures),
        computed_us=computed_us))  # fmt: skip


def forget(conn: Connection, since_us: int) -> None:
    """Delete every row that depends on a moment at or after ``since_us`` (``EVER``: all), in
    the transaction of the batch that changes it, after ``state_figures.hold``."""
    if since_us == EVER:
        conn.execute(_FORGET_ALL)
    else:
        conn.execute(_FORGET_SINCE, {"since_us": since_us})


_FORGET_ALL = delete(TABLE)
_FORGET_SINCE = delete(TABLE).where(TABLE.c.depends_until_us >= bindparam("since_us"))


def periods(as_of: AsOf, weeks: int, months: int) -> list[Span]:
    """The periods whose figures the refresher keeps: the current week and month, and the
    ``weeks`` weeks and ``months`` months before them (``state_history.ends``'s), latest end
    first."""
    found: dict[tuple[int, int], Span] = {}
    for period, n in (("week", weeks), ("month", months)):
        at = as_of.now_us
        for _ in range(n + 1):
            span = span_of(at, period, as_of)  # type: ignore[arg-type]
            found[(span.start_us, span.end_us)] = span
            at = span.start_us - 1
    return sorted(found.values(), key=lambda s: (-s.end_us, s.start_us))


def answering(conn: Connection, policy: str, at_risk_below: int,
              now_us: int) -> set[tuple[int, int, str]]:  # fmt: skip
    """``(start, end, group_by)`` of the rows that answer for ``now_us``."""
    t = TABLE.c
    rows = conn.execute(select(t.start_us, t.end_us, t.group_by).where(
        t.policy == policy, t.at_risk_below == at_risk_below, t.as_of_us <= now_us,
        t.until_us > now_us))  # fmt: skip
    return {(int(a), int(b), str(g)) for a, b, g in rows}


def prune(conn: Connection, keep: Sequence[tuple[int, int]], policy: str, at_risk_below: int,
          now_us: int) -> int:  # fmt: skip
    """Delete the rows of periods not in ``keep``, kept under other rules, or that no longer
    answer (their ``until_us`` has passed)."""
    t = TABLE.c
    stale: Any = or_(t.policy != policy, t.at_risk_below != at_risk_below, t.until_us <= now_us)
    if keep:
        stale = or_(stale, ~tuple_(t.start_us, t.end_us).in_([tuple(k) for k in keep]))
    result = conn.execute(delete(TABLE).where(stale) if keep else delete(TABLE))
    return max(0, int(result.rowcount or 0))


def counts(conn: Connection) -> int:
    """How many rows are kept."""
    return int(conn.execute(select(func.count()).select_from(TABLE)).scalar_one())
