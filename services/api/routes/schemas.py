"""The event catalog as JSON Schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.core.events import event_json_schemas

router = APIRouter(tags=["catalog"])


@router.get("/v1/schemas")
def list_schemas() -> dict[str, Any]:
    """JSON Schema of every event type in the catalog, keyed by type."""
    return {"types": event_json_schemas()}
