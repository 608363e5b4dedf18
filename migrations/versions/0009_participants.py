"""Participants: our other people in an event count as touches (issue 10).

- ``account_timeline_participants``: the participants of each event.
- ``one_voice_view_contacts``: one row per contact, event and person of ours (the primary key
  gains ``actor_id``).
- ``account_directory_touches.by_actor``: whether a department's last touch was made by the
  event's actor (else a participant of that department).
- ``leadership_log_contacts``: one row per event and executive (the primary key gains
  ``executive_id``; ``role`` says actor or participant).

Rows already stored stay right: no event before this release had participants, and its one
executive, if any, was the actor.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _primary_key(table: str, columns: list[str]) -> None:
    """Replace ``table``'s primary key (SQLite rebuilds the table; PostgreSQL swaps the
    constraint, which it named ``<table>_pkey``)."""
    if op.get_bind().dialect.name == "sqlite":
        with warnings.catch_warnings():
            # SQLAlchemy warns that the reflected columns said otherwise; taking the new key's
            # columns is what is asked for.
            warnings.filterwarnings("ignore", "Table '_alembic_tmp_", sa.exc.SAWarning)
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.create_primary_key(f"{table}_pkey", columns)
    else:
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, columns)


def upgrade() -> None:
    op.create_table(
        "account_timeline_participants",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(256), primary_key=True),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("person", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_account_timeline_participants_person", "account_timeline_participants", ["person_id"]
    )
    with op.batch_alter_table("account_directory_touches") as batch:
        batch.add_column(sa.Column("by_actor", sa.Boolean(), nullable=False, server_default="1"))
    _primary_key("one_voice_view_contacts", ["account_id", "contact_key", "event_id", "actor_id"])
    with op.batch_alter_table("leadership_log_contacts") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="actor"))
    _primary_key("leadership_log_contacts", ["event_id", "executive_id"])


def downgrade() -> None:
    op.execute("DELETE FROM leadership_log_contacts WHERE role <> 'actor'")
    _primary_key("leadership_log_contacts", ["event_id"])
    with op.batch_alter_table("leadership_log_contacts") as batch:
        batch.drop_column("role")
    op.execute(
        "DELETE FROM one_voice_view_contacts WHERE EXISTS (SELECT 1 FROM"
        " account_timeline_participants p WHERE p.event_id = one_voice_view_contacts.event_id"
        " AND p.person_id = one_voice_view_contacts.actor_id)"
    )
    _primary_key("one_voice_view_contacts", ["account_id", "contact_key", "event_id"])
    with op.batch_alter_table("account_directory_touches") as batch:
        batch.drop_column("by_actor")
    op.drop_index("ix_account_timeline_participants_person", "account_timeline_participants")
    op.drop_table("account_timeline_participants")
