"""What ``/openapi.json`` says: the event contract, the key, and every error an operation gives.

Routes document their own answers and the errors only they give (``core.problems.answers``:
404, 409, ...). The errors every operation of a kind can give come from the middleware and the
handlers around the routes, so they are documented here, in one place, from the same facts:
- 422 on every operation: a NUL in the path or a query parameter (``RefuseNul``), or a
  parameter or body that does not validate; 413 on every operation too (``BodyLimit`` reads
  the declared length of any request's body);
- 401 (no key, or an unknown or revoked one) and 503 (the key store, the database or the log
  unavailable) on every operation outside ``OPEN_PATHS``, which need no key (``security: []``);
- 403 on the operations that need a scope (every keyed one but ``/metrics``);
- 400 (not JSON) on the operations with a body.
Every error body has the one shape of ``core.problems`` (``ErrorBody``), 422 included (FastAPI's
own ``HTTPValidationError`` is not what the handler answers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.api.auth import OPEN_PATHS
from services.core.events import POSTED_ADAPTER
from services.core.problems import ERROR_REF, ErrorBody, error_answer

ANY_KEY_PATHS = frozenset({"/metrics"})
"""Keyed operations that any key may call: they cannot answer 403."""

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def build(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: the document, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            event_schema = POSTED_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
            components.update(event_schema.pop("$defs", {}))
            components["Event"] = event_schema
            error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(error_schema.pop("$defs", {}))
            components[ERROR_REF.rsplit("/", 1)[1]] = error_schema
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)  # the 422s answer ErrorBody (see the docstring)
            spec["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key: Authorization: Bearer ov_..."}}  # fmt: skip
            spec["security"] = [{"bearer": []}]
            for path, operations in spec.get("paths", {}).items():
                for method, operation in operations.items():
                    if method in _METHODS:
                        document_errors(path, operation)
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi


def document_errors(path: str, operation: dict[str, Any]) -> None:
    """Add to ``operation`` the errors the middleware and handlers can answer (module
    docstring); a response the route documented itself is kept, but for 422's body."""
    responses = operation.setdefault("responses", {})
    statuses = [413, 422]  # 413: BodyLimit reads Content-Length on any request, a GET too
    if path in OPEN_PATHS:
        operation["security"] = []  # the probes and the API's description need no key
    else:
        statuses += [401, 503] if path in ANY_KEY_PATHS else [401, 403, 503]
    if "requestBody" in operation:
        statuses.append(400)
    for status in statuses:
        answer = error_answer(status)
        kept = responses.get(str(status))
        if kept is None:
            responses[str(status)] = answer
        elif status == 422 or "content" not in kept:
            responses[str(status)] = {**kept, "content": answer["content"]}
