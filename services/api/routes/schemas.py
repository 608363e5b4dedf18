"""The event catalog as JSON Schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.api.deps import ContainerDep
from services.core.event_examples import example
from services.core.events import event_json_schemas

router = APIRouter(tags=["catalog"])


@router.get("/v1/schemas")
def list_schemas(container: ContainerDep) -> dict[str, Any]:
    """JSON Schema of every event type in the catalog, keyed by type, each with an example event
    (`examples`), and the departments this deployment accepts (`ONEVOICE_DEPARTMENTS`) wherever a
    department appears: `actor`, `participants`, `payload.owners`."""
    schemas = {
        t: {**schema, "examples": [example(t)]} for t, schema in event_json_schemas().items()
    }
    return {"types": schemas,
            "departments": list(container.settings.department_list)}  # fmt: skip
