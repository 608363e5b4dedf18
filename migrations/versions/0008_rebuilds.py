"""Rebuilds into shadow generations: the rebuild table, claims, live generations, holds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rebuilds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("generation", sa.Integer(), nullable=False, unique=True),
        sa.Column("projections", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("accept_diff", sa.Boolean(), nullable=False),
        sa.Column("keep_old", sa.Boolean(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("lease_until_us", sa.BigInteger(), nullable=True),
        sa.Column("progress", sa.Text(), nullable=False),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_table(
        "rebuild_claims",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("rebuild_id", sa.String(32), nullable=False),
    )
    op.create_table(
        "projection_generations",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("kept", sa.Integer(), nullable=True),
        sa.Column("switched_us", sa.BigInteger(), nullable=True),
    )
    with op.batch_alter_table("projection_fences") as batch:
        batch.add_column(sa.Column("held_until_us", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.add_column(sa.Column("updated_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.drop_column("updated_us")
    with op.batch_alter_table("projection_fences") as batch:
        batch.drop_column("held_until_us")
    op.drop_table("projection_generations")
    op.drop_table("rebuild_claims")
    op.drop_table("rebuilds")
