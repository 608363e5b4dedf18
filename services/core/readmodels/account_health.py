"""Health on the accounts list: ``at_risk`` filtering and sorting by health.

Scores come from the same facts and rules as the view's ``health`` (``view_facts.load_facts``
with ``open_only``, which keeps every row the score depends on), evaluated when the list is read
because windows and overdue depend on the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection

from services.core.health import health
from services.core.readmodels import accounts, view_facts
from services.core.view_rules import AsOf, Facts, lifetime_value, next_renewal

# Above this many accounts, loading every account's facts beats an IN list of ids.
_IN_LIST_LIMIT = 500


def scores(conn: Connection, account_ids: Sequence[str], as_of: AsOf) -> dict[str, int]:
    """Health score per account id."""
    facts = _facts(conn, account_ids, as_of)
    return {a: int(health(facts.get(a, Facts()), as_of)["score"]) for a in account_ids}


def _facts(
    conn: Connection, account_ids: Sequence[str], as_of: AsOf, *, orders: bool = False
) -> dict[str, Facts]:
    wanted = None if len(account_ids) > _IN_LIST_LIMIT else account_ids
    return view_facts.load_facts(conn, wanted, as_of, open_only=True, orders=orders)


def _cents(value: float) -> int:
    """A sort key of whole hundredths, within int64: cursors carry integers."""
    return max(-(2**63), min(2**63 - 1, round(value * 100)))


def read_accounts(
    conn: Connection, query: accounts.AccountQuery, as_of: AsOf, *,
    at_risk: bool | None, below: int, renewal_within_us: int | None = None,
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """A page of accounts with ``health: {score, at_risk}`` on each item.

    ``sort="health"`` orders by score (worst first), then id; ``sort="value"`` by lifetime
    order value in ``as_of.policy.value_currency`` (highest first), then id; ``at_risk`` keeps
    accounts whose score is below ``below`` (true) or not (false); ``renewal_within_us`` keeps
    accounts whose next renewal falls between now and that long after it.
    """
    computed = query.sort in ("health", "value") or at_risk is not None \
        or renewal_within_us is not None  # fmt: skip
    if not computed:
        items, cursor = accounts.read_accounts(conn, query)
        return _with_health(items, scores(conn, [i["account_id"] for i in items], as_of),
                            below), cursor  # fmt: skip
    sorted_here = query.sort in ("health", "value")
    sql_query = replace(query, after=None) if sorted_here else query
    candidates = accounts.matching_ids(conn, sql_query)
    facts = _facts(conn, [a for _, a in candidates], as_of, orders=query.sort == "value")
    score = {a: int(health(facts.get(a, Facts()), as_of)["score"]) for _, a in candidates}
    if at_risk is not None:
        candidates = [(k, a) for k, a in candidates if (score[a] < below) == at_risk]
    if renewal_within_us is not None:
        within = renewal_within_us
        candidates = [(k, a) for k, a in candidates
                      if _renews_within(facts.get(a, Facts()), as_of, within)]  # fmt: skip
    if sorted_here:
        if query.sort == "health":
            candidates = sorted((score[a], a) for _, a in candidates)
        else:
            currency = as_of.policy.value_currency
            candidates = sorted(
                (-_cents(lifetime_value(facts.get(a, Facts()), currency)), a) for _, a in candidates
            )
        if query.after is not None:
            candidates = [c for c in candidates if c > tuple(query.after)]
    page = candidates[: query.limit]
    more = len(candidates) > query.limit
    found = accounts.account_items(conn, [a for _, a in page])
    items = [found[a] for _, a in page if a in found]
    cursor = accounts.encode_cursor(query.sort, page[-1]) if more else None
    return _with_health(items, score, below), cursor


def _renews_within(facts: Facts, as_of: AsOf, within_us: int) -> bool:
    upcoming = next_renewal(facts, as_of)
    return upcoming is not None and upcoming["renews_us"] <= as_of.now_us + within_us


def _with_health(
    items: list[dict[str, Any]], score: dict[str, int], below: int
) -> list[dict[str, Any]]:
    for item in items:
        value = score[item["account_id"]]
        item["health"] = {"score": value, "at_risk": value < below}
    return items
