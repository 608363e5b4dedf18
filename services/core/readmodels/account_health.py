"""Health on the accounts list and the coverage report, read from the health cache.

``evaluate`` is the rule: an account's score, list keys and coverage items from the same facts
and rules as the view's ``health`` (``view_facts.load_facts`` with ``open_only``, which keeps
every row the score depends on), plus the moment the result may next change on its own
(``next_change``). The refresher stores it ahead of reads in ``health_cache``; a read takes the
rows valid for its clock from there and evaluates the stale ones itself, so its answer is the
same whatever the cache holds — only its cost differs. Sorting and filtering by health, value
and renewal are indexed queries over the valid rows, merged with the stale ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, and_, func, select, tuple_

from services.core.metrics.definitions import HEALTH_EVALUATIONS
from services.core.readmodels import (
    accounts,
    attention,
    health_cache,
    state_history,
    timeline,
    view_facts,
)
from services.core.readmodels.health_cache import Entry
from services.core.view_rules import (
    DAY_US,
    AsOf,
    Facts,
    _window_start,
    lifetime_value,
    next_renewal,
)

# Above this many accounts, loading every account's facts beats IN lists of ids.
_IN_LIST_LIMIT = 500


# -- evaluation --------------------------------------------------------------------------------


def next_change(f: Facts, as_of: AsOf, next_event_us: int | None) -> int:
    """The earliest moment after now at which anything ``evaluate`` computes may change with no
    new event: the next local midnight (every window of N calendar days rolls there), and each
    fact's own moments still ahead — a due time, an offer's expiry, a renewal date, the start of
    its reminder window and the instant after it, a future-dated fact or event (``next_event_us``:
    the account's next event after now, which the windows do not load yet). Early is safe (the
    account is evaluated again); late would be wrong, so in doubt a moment is added."""
    now = as_of.now_us
    moments = [_window_start(now, as_of.tz, 0)]  # local midnight tonight

    def add(*times: int | None) -> None:
        moments.extend(t for t in times if t is not None and t > now)

    add(next_event_us, f.last_touch_us)
    for c in f.commitments:
        add(c.made_us, c.due_us, c.closed_us)
    for t in f.tickets:
        add(t.opened_us, t.resolved_us)
    for m in f.messages:
        add(m.sort_key[0], m.valid_until_us)
    for x in f.executive_touches:
        add(x.at_us)
    for _, _, at in f.csat:
        add(at)
    for h in f.handoffs:
        add(h.at_us, h.followed_us)
    for n in f.needs:
        add(n.identified_us, n.addressed_us)
    reminder = as_of.policy.renewal_days * DAY_US
    for k in f.contracts:
        add(None if k.scheduled_key is None else k.scheduled_key[0],
            None if k.renewed_key is None else k.renewed_key[0])  # fmt: skip
        for renews in (k.renews_us, k.next_renews_us):
            if renews is not None:
                add(renews, renews + 1, renews - reminder)
    for _, at, _, _ in f.churns:
        add(at)
    return min(moments)


def _cents(value: float) -> int:
    """A sort key of whole hundredths, within int64: cursors carry integers."""
    return max(-(2**63), min(2**63 - 1, round(value * 100)))


def evaluate(conn: Connection, account_ids: Sequence[str], as_of: AsOf, *,
             by: str = "read") -> dict[str, Entry]:  # fmt: skip
    """Each account's entry at ``as_of`` (accounts without a directory row count as
    unregistered and never touched); ``by`` labels ``onevoice_health_evaluations_total``."""
    ids = list(dict.fromkeys(account_ids))
    if not ids:
        return {}
    HEALTH_EVALUATIONS.labels(by).inc(len(ids))
    if len(ids) > _IN_LIST_LIMIT:
        return _evaluate(conn, ids, None, as_of)
    return _evaluate(conn, ids, ids, as_of)


def _evaluate(conn: Connection, ids: Sequence[str], wanted: Sequence[str] | None,
              as_of: AsOf) -> dict[str, Entry]:  # fmt: skip
    a, e = accounts.TABLES.accounts, timeline.TABLES.entries
    facts = view_facts.load_facts(conn, wanted, as_of, open_only=True, orders=True)
    directory = select(a.c.account_id, a.c.name, a.c.registered, a.c.last_touch_us)
    upcoming = (select(e.c.account_id, func.min(e.c.occurred_us).label("at"))
                .where(e.c.occurred_us > as_of.now_us).group_by(e.c.account_id))  # fmt: skip
    if wanted is not None:
        directory = directory.where(a.c.account_id.in_(list(wanted)))
        upcoming = upcoming.where(e.c.account_id.in_(list(wanted)))
    rows = {r.account_id: r for r in conn.execute(directory)}
    next_event = {r.account_id: r.at for r in conn.execute(upcoming)}
    currency = as_of.policy.value_currency
    out: dict[str, Entry] = {}
    for account_id in ids:
        f = facts.get(account_id, Facts())
        row = rows.get(account_id)
        renewal = next_renewal(f, as_of)
        items = attention.items(
            account_id, None if row is None else row.name,
            False if row is None else bool(row.registered),
            None if row is None else row.last_touch_us, f, as_of,
        )  # fmt: skip
        state = state_history.of_facts(f, as_of)
        out[account_id] = Entry(
            score=state.score,
            value_cents=_cents(lifetime_value(f, currency)),
            renews_us=None if renewal is None else int(renewal["renews_us"]),
            coverage=json.dumps(items, ensure_ascii=False) if items else None,
            valid_from_us=as_of.now_us,
            valid_until_us=next_change(f, as_of, next_event.get(account_id)),
            touch_key=-1 if row is None or row.last_touch_us is None else row.last_touch_us,
            sections=health_cache.section_values(items),
            state=state.columns(),
        )
    return out


def entries(conn: Connection, account_ids: Sequence[str], as_of: AsOf) -> dict[str, Any]:
    """``account_id -> row or Entry`` (both have ``score``, ``value_cents``, ``renews_us``,
    ``coverage``): the cache's valid rows, the others evaluated now."""
    found: dict[str, Any] = health_cache.valid_rows(conn, account_ids, as_of)
    found.update(evaluate(conn, [a for a in account_ids if a not in found], as_of))
    return found


def scores(conn: Connection, account_ids: Sequence[str], as_of: AsOf) -> dict[str, int]:
    """Health score per account id."""
    return {a: int(e.score) for a, e in entries(conn, account_ids, as_of).items()}


# -- the accounts list -------------------------------------------------------------------------


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
    h, a = health_cache.TABLE.c, accounts.TABLES.accounts.c
    by_name = query.sort == "name"
    # The page's key: the cache's own for every sort but the name (the ``touch_key`` of a
    # valid row is its directory's last touch), so that a cache index serves the order; the
    # stale rows' key: the directory's (last touch, name) or their evaluation's.
    primary, descending = _primary(query.sort)
    # Pages merged here order ids by code point, as Python does: PostgreSQL's collation may
    # not (the name sort keeps the database's order throughout, as the plain list does). The
    # cache's ids are in code-point order on every backend (health_cache).
    account_id = a.account_id if by_name else h.account_id
    keyset: list[Any] = []
    if query.after is not None:
        keyset.append(_after(primary, account_id, query.after, descending))
    base = accounts.statement(replace(query, after=None))
    # Every account of the directory has a row (health_cache: the projector creates it with
    # the account, migrations, switches and replays adopt, the refresher too): an inner join,
    # so stale rows are found by the cache's own indexes, not by scanning the directory.
    joined = base.join_from(accounts.TABLES.accounts, health_cache.TABLE,
                            _directory_join(conn, driven_by_cache=not by_name))  # fmt: skip
    # The page from the rows valid now: filters, order and limit in SQL.
    conditions: list[Any] = [health_cache.valid(as_of), *keyset]
    if at_risk is not None:
        conditions.append(h.score < below if at_risk else h.score >= below)
    if renewal_within_us is not None:
        conditions.append(and_(h.renews_us.is_not(None),
                               h.renews_us <= as_of.now_us + renewal_within_us))  # fmt: skip
    order = (primary.desc(), account_id.desc()) if descending \
        else (primary.asc(), account_id.asc())  # fmt: skip
    page_sql = (joined.with_only_columns(a.account_id, primary.label("k"), h.score)
                .where(*conditions).order_by(*order).limit(query.limit + 1))  # fmt: skip
    score: dict[str, int] = {}
    page: list[tuple[Any, str]] = []
    for r in conn.execute(page_sql):
        page.append((r.k, r.account_id))
        score[r.account_id] = int(r.score)
    # The stale rows matching the filters (and, for the directory's own sorts, the cursor):
    # evaluated here, filtered and merged.
    own_sort = query.sort in ("last_touch", "name")
    own_key = _directory_key(query.sort)
    own_keyset = [] if query.after is None or not own_sort else \
        [_after(own_key, account_id, query.after, descending)]  # fmt: skip
    stale = conn.execute(joined.with_only_columns(a.account_id, own_key.label("k")).where(
        health_cache.stale(as_of), *own_keyset)).all()  # fmt: skip
    fresh = evaluate(conn, [r.account_id for r in stale], as_of)
    for r in stale:
        e = fresh[r.account_id]
        if at_risk is not None and (e.score < below) != at_risk:
            continue
        if renewal_within_us is not None and (
                e.renews_us is None or e.renews_us > as_of.now_us + renewal_within_us):  # fmt: skip
            continue
        key = r.k if own_sort else _key_of(query.sort, e)
        if not own_sort and query.after is not None \
                and not (key, r.account_id) > tuple(query.after):  # fmt: skip
            continue
        page.append((key, r.account_id))
        score[r.account_id] = e.score
    if by_name:
        if stale:
            page = _in_name_order(conn, page, query.limit + 1)  # the database's collation
    else:
        page.sort(reverse=descending)
    more = len(page) > query.limit
    page = page[: query.limit]
    found = accounts.account_items(conn, [x for _, x in page])
    items = [found[x] for _, x in page if x in found]
    cursor = accounts.encode_cursor(query.sort, page[-1]) if more else None
    return _with_health(items, score, below), cursor


def _in_name_order(conn: Connection, page: list[tuple[Any, str]],
                   limit: int) -> list[tuple[Any, str]]:  # fmt: skip
    """The first ``limit`` of ``page`` in the database's name order, 500 ids at a time."""
    a = accounts.TABLES.accounts.c
    best: list[str] = []
    ordered: list[tuple[Any, str]] = []
    ids = [x for _, x in page]
    for start in range(0, len(ids), 500):
        among = best + ids[start : start + 500]
        ordered = [(r.name_key, r.account_id) for r in conn.execute(
            select(a.name_key, a.account_id).where(a.account_id.in_(among))
            .order_by(a.name_key, a.account_id).limit(limit))]  # fmt: skip
        best = [x for _, x in ordered]
    return ordered


def _directory_join(conn: Connection, *, driven_by_cache: bool) -> Any:
    """The directory-cache join: a query that walks a cache index in order compares ids so
    that the planner keeps that order and looks accounts up in the directory's key
    (``health_cache.in_directory``); one that walks the directory compares them so that it
    looks accounts up in the cache's key."""
    if driven_by_cache:
        return health_cache.in_directory(conn)
    h, a = health_cache.TABLE.c, accounts.TABLES.accounts.c
    return a.account_id == h.account_id


def _after(key: Any, account_id: Any, after: tuple[Any, str], descending: bool) -> Any:
    pair = tuple_(key, account_id)
    return pair < tuple_(*after) if descending else pair > tuple_(*after)


def _primary(sort: accounts.Sort) -> tuple[Any, bool]:
    """The sort's key column for valid rows and whether pages run downwards."""
    h, a = health_cache.TABLE.c, accounts.TABLES.accounts.c
    if sort == "health":
        return h.score, False
    if sort == "value":
        return -h.value_cents, False
    if sort == "last_touch":
        return h.touch_key, True
    return a.name_key, False


def _directory_key(sort: accounts.Sort) -> Any:
    """The directory's key of a stale row for its own sorts (a placeholder for the others)."""
    a = accounts.TABLES.accounts.c
    if sort == "last_touch":
        return func.coalesce(a.last_touch_us, -1)  # never touched: -1, so last
    return a.name_key


def _key_of(sort: accounts.Sort, e: Entry) -> int:
    return e.score if sort == "health" else -e.value_cents


def _with_health(
    items: list[dict[str, Any]], score: dict[str, int], below: int
) -> list[dict[str, Any]]:
    for item in items:
        value = score[item["account_id"]]
        item["health"] = {"score": value, "at_risk": value < below}
    return items


# -- coverage ----------------------------------------------------------------------------------


def coverage_sections(conn: Connection, as_of: AsOf, limit: int) -> dict[str, dict[str, Any]]:
    """Per coverage section ``{count, items}``: its item count and its first ``limit`` items
    in ``attention.ORDER`` — what sorting every account's items would give. From the valid rows:
    the counts kept per policy (``health_cache.item_counts``), and per section the ``limit``
    accounts with the smallest first keys (``attention.first_key``; a partial index per
    section), whose items are then loaded; stale accounts are evaluated here and merged."""
    h, a = health_cache.TABLE.c, accounts.TABLES.accounts.c
    on = _directory_join(conn, driven_by_cache=True)
    joined = select(a.account_id).join_from(accounts.TABLES.accounts, health_cache.TABLE, on)
    columns = health_cache.SECTION_COLUMNS
    valid = health_cache.valid(as_of)
    counts = health_cache.item_counts(conn, as_of)
    stale_ids = [r.account_id for r in conn.execute(
        joined.where(health_cache.stale(as_of)))]  # fmt: skip
    stale = {x: json.loads(e.coverage) for x, e in evaluate(conn, stale_ids, as_of).items()
             if e.coverage is not None}  # fmt: skip
    shown: dict[str, list[str]] = {}
    for section, (key, _) in columns.items():
        counts[section] += sum(len(items.get(section, ())) for items in stale.values())
        # The section's index: its keys and ids are in code-point order on every backend.
        first = joined.where(valid, h[key].is_not(None)).order_by(h[key], h.account_id)
        shown[section] = list(conn.execute(first.limit(limit)).scalars())
    wanted = sorted({x for ids in shown.values() for x in ids})
    loaded: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found = conn.execute(select(h.account_id, h.coverage).where(h.account_id.in_(chunk)))
        loaded.update({r.account_id: json.loads(r.coverage) for r in found})
    out: dict[str, dict[str, Any]] = {}
    for section in columns:
        candidates = {x: loaded[x] for x in shown[section]} | stale
        items = [i for x in sorted(candidates) for i in candidates[x].get(section, ())]
        items.sort(key=attention.ORDER[section])
        out[section] = {"count": counts[section], "items": items[:limit]}
    return out
