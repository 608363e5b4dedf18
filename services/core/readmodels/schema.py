"""The metadata every table of the read-model database hangs off (alembic compares to it)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

METADATA = MetaData()

CHECKPOINTS = Table(
    "projection_checkpoints",
    METADATA,
    Column("projection", String(64), primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=True),  # when a batch last moved it (status)
)

RECEIPTS = Table(
    "ingest_receipts",
    METADATA,
    Column("event_id", String(36), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("partition", Integer, nullable=True),
    Column("offset", BigInteger, nullable=True),
)

FENCES = Table(
    "projection_fences",
    METADATA,
    Column("projection", String(64), primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    Column("held_until_us", BigInteger, nullable=True),
)
"""Bumped by replay (and any rebuild) that resets a projection's checkpoints; a runner that
resumed at an older epoch may not commit (see ``checkpoints.fence``). ``held_until_us``: a
rebuild verifying against the live generation pauses its commits until then (a lease, so a
rebuild that dies cannot stall the live projector for longer)."""
