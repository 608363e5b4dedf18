"""``GET /v1/reports/voice``: what customers said across accounts and departments, by theme.

Items come from ``report_facts_voice`` (see ``facts``): complaints (theme: their category),
low CSAT scores with their comments, success risks, needs (theme: their category), churn
reasons, the concerns and complaints executives heard, and sales next steps. A group is one kind
and theme (themes compare case-insensitively); it counts its items in the window and in the
window of the same length just before, so a leader sees what grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select

from services.core.readmodels import accounts
from services.core.readmodels.reports import facts
from services.core.readmodels.reports.periods import change, previous
from services.core.view_rules import iso

KINDS = ("complaint", "low_csat", "success_risk", "need", "churn_reason", "executive_concern",
         "executive_complaint", "next_step")  # fmt: skip


@dataclass(frozen=True)
class VoiceQuery:
    from_us: int
    to_us: int
    segment: str | None = None
    department: str | None = None
    category: str | None = None  # a theme, case-insensitive
    kind: str | None = None
    items: int = 20  # items shown per group


def _filtered(query: VoiceQuery, columns: list[Any], from_us: int, to_us: int) -> Select[Any]:
    v, a = facts.TABLES.voice, accounts.TABLES.accounts
    stmt = select(*columns).where(and_(v.c.at_us >= from_us, v.c.at_us < to_us))
    if query.segment is not None:
        stmt = stmt.join(a, a.c.account_id == v.c.account_id).where(a.c.segment == query.segment)
    if query.department is not None:
        stmt = stmt.where(v.c.department == query.department)
    if query.category is not None:
        stmt = stmt.where(v.c.theme_key == query.category.casefold())
    if query.kind is not None:
        stmt = stmt.where(v.c.kind == query.kind)
    return stmt


def read_voice(conn: Connection, query: VoiceQuery) -> dict[str, Any]:
    """Groups (kind, theme) with ``count``, ``accounts`` (distinct), the previous window's count
    and the change, and the newest ``items`` items, each citing its event and account; groups
    by count, largest first. ``totals``: per kind, now and before."""
    v = facts.TABLES.voice
    rows = conn.execute(
        _filtered(query, [v], query.from_us, query.to_us).order_by(
            v.c.at_us.desc(), v.c.partition.desc(), v.c.offset.desc(), v.c.item
        )
    ).all()
    prev_from, prev_to = previous(query.from_us, query.to_us)
    before: dict[tuple[str, str], int] = {}
    quiet_theme: dict[tuple[str, str], str] = {}  # how a theme was written, for quiet groups
    counted = _filtered(
        query,
        [v.c.kind, v.c.theme_key, func.count().label("n"), func.max(v.c.theme).label("theme")],
        prev_from,
        prev_to,
    )
    for r in conn.execute(counted.group_by(v.c.kind, v.c.theme_key)):
        before[(r.kind, r.theme_key)] = int(r.n)
        quiet_theme[(r.kind, r.theme_key)] = str(r.theme)
    names = accounts.names_of(conn, {r.account_id for r in rows})
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        group = groups.setdefault(
            (r.kind, r.theme_key),
            {"kind": r.kind, "theme": r.theme, "count": 0, "_accounts": set(), "items": []},
        )
        group["count"] += 1
        group["_accounts"].add(r.account_id)
        if len(group["items"]) < query.items:
            group["items"].append({
                "text": r.text, "account_id": r.account_id, "account_name": names.get(r.account_id),
                "department": r.department, "actor_id": r.actor_id, "at": iso(r.at_us),
                "event_id": r.event_id, **({"score": r.score} if r.score is not None else {}),
            })  # fmt: skip
    for key in before:
        if key not in groups:  # gone quiet: shown with 0, so a fall shows too
            groups[key] = {"kind": key[0], "theme": quiet_theme[key], "count": 0,
                           "_accounts": set(),
                           "items": []}  # fmt: skip
    out = []
    for key, g in groups.items():
        accounts_now = g.pop("_accounts")
        out.append({**g, "accounts": len(accounts_now), **change(g["count"], before.get(key, 0))})
    out.sort(key=lambda g: (-g["count"], -g["previous"], g["kind"], g["theme"].casefold()))
    totals = {kind: {"count": sum(g["count"] for g in out if g["kind"] == kind),
                     "previous": sum(g["previous"] for g in out if g["kind"] == kind)}
              for kind in KINDS}  # fmt: skip
    return {"from": iso(query.from_us), "to": iso(query.to_us),
            "previous": {"from": iso(prev_from), "to": iso(prev_to)},
            "totals": totals, "groups": out}  # fmt: skip


def voice_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The CSV: one row per item shown (groups without items in the window get one row)."""
    header = ["kind", "theme", "count", "previous", "change", "accounts", "at", "account_id",
              "account_name", "department", "text", "score", "event_id"]  # fmt: skip
    rows = []
    for g in report["groups"]:
        head = [g["kind"], g["theme"], g["count"], g["previous"], g["change"], g["accounts"]]
        for i in g["items"] or [{}]:
            rows.append(
                [
                    *head,
                    i.get("at"),
                    i.get("account_id"),
                    i.get("account_name"),
                    i.get("department"),
                    i.get("text"),
                    i.get("score"),
                    i.get("event_id"),
                ]
            )
    return header, rows
