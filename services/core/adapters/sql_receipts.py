"""ReceiptStore on the SQL database (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, delete, func, select, text, update

from services.core.adapters.sql import Database, insert_new
from services.core.ports import Receipt, ReceiptStore
from services.core.readmodels.schema import RECEIPTS


class SqlReceiptStore(ReceiptStore):
    """Claims are atomic per id: of two concurrent claims for one id, exactly one wins."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, claims: Mapping[str, str]) -> dict[str, Receipt]:
        if not claims:
            return {}
        # In id order: two claims of overlapping ids lock them in one order (no deadlock).
        rows = [{"event_id": k, "digest": claims[k]} for k in sorted(claims)]
        with self._db.transaction() as conn:
            # RETURNING names exactly the rows this call inserted: the claims it won. On
            # PostgreSQL one statement for every row (``insert_new``), not one per row.
            won = insert_new(conn, RECEIPTS, rows, "event_id")
            lost = [k for k in claims if k not in won]
            if not lost:
                return {}
            found = conn.execute(select(RECEIPTS).where(RECEIPTS.c.event_id.in_(lost)))
            return {
                r.event_id: Receipt(
                    r.event_id, r.digest, None if r.partition is None else (r.partition, r.offset)
                )
                for r in found
            }

    def confirm(self, positions: Mapping[str, tuple[int, int]]) -> None:
        if not positions:
            return
        # In id order: fewer deadlocks between two confirms of one id (two requests that both
        # appended it); the plan, not this order, decides the lock order of an UPDATE ... FROM,
        # so PostgreSQL may still abort one, which then answers 503 (its event is in the log).
        rows = [{"eid": k, "p": positions[k][0], "o": positions[k][1]} for k in sorted(positions)]
        with self._db.transaction() as conn:
            if conn.dialect.name == "postgresql":  # one statement, not one per row
                conn.execute(_CONFIRM_PG, {"rows": json.dumps(rows, separators=(",", ":"))})
            else:
                conn.execute(_CONFIRM, rows)

    def release(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        with self._db.transaction() as conn:
            conn.execute(delete(RECEIPTS).where(RECEIPTS.c.event_id.in_(list(event_ids))))

    def highest_positions(self) -> dict[int, int]:
        """``partition -> highest offset`` any receipt names (one scan of the table)."""
        c = RECEIPTS.c
        query = select(c.partition, func.max(c.offset)).where(c.partition.is_not(None))
        with self._db.reading() as conn:
            return {int(p): int(o) for p, o in conn.execute(query.group_by(c.partition))}

    def reset(self) -> int:
        """Forget every receipt (the log was replaced on purpose); returns how many."""
        with self._db.transaction() as conn:
            return int(conn.execute(delete(RECEIPTS)).rowcount)


# Built once (every POST runs them; building them per call was measurable: py-spy).
_CONFIRM_PG = text(f"""
UPDATE {RECEIPTS.name} AS r SET partition = u.p, "offset" = u.o
FROM json_to_recordset(CAST(:rows AS json)) AS u(eid text, p integer, o bigint)
WHERE r.event_id = u.eid""")
_CONFIRM = (
    update(RECEIPTS)
    .where(RECEIPTS.c.event_id == bindparam("eid"))
    .values(partition=bindparam("p"), offset=bindparam("o"))
)
