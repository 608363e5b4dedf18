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
)

RECEIPTS = Table(
    "ingest_receipts",
    METADATA,
    Column("event_id", String(36), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("partition", Integer, nullable=True),
    Column("offset", BigInteger, nullable=True),
)
