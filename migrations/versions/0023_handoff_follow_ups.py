"""Each handoff's first follow-up kept by the OneVoiceView (``one_voice_view_follow_ups``, and
``followed_us`` / ``followed_event_id`` on its signals): the handoff and KPI reports read it
instead of looking up every signal's follow-up per request.

Filled here from what the read models already hold — the timeline's sales and success touches
(by the actor or a participant; not those the OneVoiceView parked) and the OneVoiceView's
contacts (of events on the timeline) — then each signal's first follow-up from those rows, by
the rule the projection applies. Where the AccountTimeline had applied less of the log than the
OneVoiceView (its checkpoint behind, or a record it parked), the OneVoiceView's checkpoint is
moved back to there, so the projector applies those events again (its writes are idempotent:
records that fail park again) and adds their follow-ups. Run it while the projectors are
stopped, as every migration.

Other generations of the OneVoiceView (a rebuild's shadow, a generation kept for rollback) have
the old shape: they are dropped, the kept one cleared, and the open rebuilds of the OneVoiceView
failed with a message to start them again (as 0012 did).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

FOLLOW_UPS = "one_voice_view_follow_ups"
SIGNALS = "one_voice_view_signals"
DEPARTMENTS = "('sales', 'success')"  # view_rules.FOLLOW_UP_DEPARTMENTS


def _retire_other_generations(bind: sa.engine.Connection) -> None:
    for table in sa.inspect(bind).get_table_names():
        if table.startswith("one_voice_view__g"):
            op.drop_table(table)
    bind.execute(
        sa.text("UPDATE projection_generations SET kept = NULL WHERE projection = 'OneVoiceView'")
    )
    now_us = time.time_ns() // 1000
    for rebuild_id, projections in bind.execute(sa.text(
        "SELECT id, projections FROM rebuilds WHERE state IN ('running', 'verifying', 'diff')"
    )).all():  # fmt: skip
        if "OneVoiceView" not in json.loads(projections):
            continue
        bind.execute(sa.text(
            "UPDATE rebuilds SET state = 'failed', finished_us = :now, updated_us = :now,"
            " worker = NULL, lease_until_us = NULL, error = :error WHERE id = :id"
        ), {"now": now_us, "id": rebuild_id, "error": (
            "migration 0023 changed the OneVoiceView's tables, and its shadow generation was"
            " dropped: start the rebuild again")})  # fmt: skip
        bind.execute(sa.text("DELETE FROM rebuild_claims WHERE rebuild_id = :id"),
                     {"id": rebuild_id})  # fmt: skip


_FILL = f"""
INSERT INTO {FOLLOW_UPS} (account_id, contact_key, event_id, at_us, partition, "offset")
SELECT e.account_id, '', e.event_id, e.occurred_us, e.partition, e."offset"
  FROM account_timeline_entries e
 WHERE e.type <> 'account.registered'
   AND (e.department IN {DEPARTMENTS}
        OR EXISTS (SELECT 1 FROM account_timeline_participants p
                    WHERE p.event_id = e.event_id AND p.department IN {DEPARTMENTS}))
   AND NOT EXISTS (SELECT 1 FROM dead_letters d
                    WHERE d.projection = 'OneVoiceView' AND d.generation = 0
                      AND d.state = 'parked' AND d.partition = e.partition
                      AND d."offset" = e."offset")
UNION
SELECT c.account_id, c.contact_key, c.event_id, c.at_us, c.partition, c."offset"
  FROM one_voice_view_contacts c
 WHERE c.department IN {DEPARTMENTS}
   AND EXISTS (SELECT 1 FROM account_timeline_events ev
                WHERE ev.event_id = c.event_id AND ev.type <> 'account.registered')
"""
"""The OneVoiceView's follow-ups as the timeline and the view's contacts show them: of the
events both applied (an event the OneVoiceView parked is left out; one the timeline lacks is
applied again, ``_BACK_TO_THE_TIMELINE``)."""

_FIRST = f"""(SELECT f.{{column}} FROM {FOLLOW_UPS} f
   WHERE f.account_id = {SIGNALS}.account_id AND f.contact_key = {SIGNALS}.contact_key
     AND f.at_us >= {SIGNALS}.at_us
   ORDER BY f.at_us, f.partition, f."offset" LIMIT 1)"""

# Per topic and partition, the first offset the timeline has not applied: its checkpoint, or
# the earliest record it parked (state 'parked') if that comes first; 0 when it has neither.
_TIMELINE_FROM = """COALESCE((
    SELECT MIN(o) FROM (
        SELECT t.next_offset AS o FROM projection_checkpoints t
         WHERE t.projection = 'AccountTimeline' AND t.generation = 0
           AND t.topic = projection_checkpoints.topic
           AND t.partition = projection_checkpoints.partition
        UNION ALL
        SELECT d."offset" FROM dead_letters d
         WHERE d.projection = 'AccountTimeline' AND d.generation = 0 AND d.state = 'parked'
           AND d.topic = projection_checkpoints.topic
           AND d.partition = projection_checkpoints.partition) AS applied_to), 0)"""

_BACK_TO_THE_TIMELINE = f"""
UPDATE projection_checkpoints SET next_offset = {_TIMELINE_FROM}
 WHERE projection = 'OneVoiceView' AND generation = 0 AND next_offset > {_TIMELINE_FROM}
"""
"""The OneVoiceView applies again what the timeline had not applied (its writes are
idempotent), so those events' follow-ups are added."""


def upgrade() -> None:
    bind = op.get_bind()
    _retire_other_generations(bind)
    op.create_table(
        FOLLOW_UPS,
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("contact_key", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_one_voice_view_follow_ups_at",
        FOLLOW_UPS,
        ["account_id", "contact_key", "at_us", "partition", "offset"],
    )
    op.add_column(SIGNALS, sa.Column("followed_us", sa.BigInteger(), nullable=True))
    op.add_column(SIGNALS, sa.Column("followed_event_id", sa.String(36), nullable=True))
    bind.execute(sa.text(_FILL))
    bind.execute(sa.text(
        f"UPDATE {SIGNALS} SET followed_us = {_FIRST.format(column='at_us')},"
        f" followed_event_id = {_FIRST.format(column='event_id')}"))  # fmt: skip
    bind.execute(sa.text(_BACK_TO_THE_TIMELINE))
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(f"ANALYZE {FOLLOW_UPS}"))


def downgrade() -> None:
    op.drop_column(SIGNALS, "followed_event_id")
    op.drop_column(SIGNALS, "followed_us")
    op.drop_index("ix_one_voice_view_follow_ups_at", FOLLOW_UPS)
    op.drop_table(FOLLOW_UPS)
