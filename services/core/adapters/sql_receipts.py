"""ReceiptStore on the SQL database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.core.adapters.sql import Database
from services.core.ports import Receipt, ReceiptStore
from services.core.readmodels.schema import RECEIPTS


class SqlReceiptStore(ReceiptStore):
    """Claims are atomic per id: of two concurrent claims for one id, exactly one wins."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, claims: Mapping[str, str]) -> dict[str, Receipt]:
        if not claims:
            return {}
        rows = [{"event_id": k, "digest": v} for k, v in claims.items()]
        claim = _CLAIM_PG if self._db.dialect == "postgresql" else _CLAIM_SQLITE
        with self._db.transaction() as conn:
            # RETURNING names exactly the rows this call inserted: the claims it won.
            won = set(conn.execute(claim, rows).scalars())
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
        with self._db.transaction() as conn:
            conn.execute(_CONFIRM, [{"eid": k, "p": p, "o": o} for k, (p, o) in positions.items()])

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
_CLAIM_PG = pg_insert(RECEIPTS).on_conflict_do_nothing().returning(RECEIPTS.c.event_id)
_CLAIM_SQLITE = sqlite_insert(RECEIPTS).on_conflict_do_nothing().returning(RECEIPTS.c.event_id)
_CONFIRM = (
    update(RECEIPTS)
    .where(RECEIPTS.c.event_id == bindparam("eid"))
    .values(partition=bindparam("p"), offset=bindparam("o"))
)
