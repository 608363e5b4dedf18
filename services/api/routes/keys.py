"""``/v1/admin/keys``: create, list and revoke API keys (admin scope; README, Security)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.api.deps import ContainerDep
from services.core.access import KeyProblem, grant_from
from services.core.access import store as keys
from services.core.problems import answers
from services.core.readmodels.timeline import to_micros

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class NewKey(BaseModel):
    """A key to create; at least one scope."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="1-64 of a-z, 0-9, '.', '_', '-'; never reused.")
    write_departments: list[str] = Field(
        default_factory=list, description="Departments whose events the key may post."
    )
    write_types: list[str] | None = Field(
        default=None, description="Only these event types (default: any of those departments)."
    )
    read: bool = Field(default=False, description="Timelines, views, lists and reports.")
    admin: bool = Field(default=False, description="Rebuilds, dead letters, keys, erasure.")
    read_sensitive: bool = Field(
        default=False,
        description="Read, with contacts' personal data, executive notes and"
        " complaint text (else replaced by '[restricted]').",
    )
    write_rate: float | None = Field(
        default=None, description="Events/s it may write (default ONEVOICE_WRITE_RATE; 0: none)."
    )


@router.post("/keys", status_code=201)
async def create_key(container: ContainerDep,
                     new: Annotated[NewKey, Body()]) -> JSONResponse:  # fmt: skip
    """Create a key. **201** `{"key": {...}, "secret": "ov_..."}`: the secret is shown this
    once (only its SHA-256 is kept). **422** names the field: a taken name, an unknown
    department or type, no scope."""
    try:
        grant = grant_from(new.name, new.write_departments, new.write_types, read=new.read,
                           admin=new.admin, read_sensitive=new.read_sensitive,
                           write_rate=new.write_rate,
                           departments=container.settings.department_list)  # fmt: skip
    except KeyProblem as exc:
        raise _invalid(exc) from exc

    def create() -> tuple[str, dict[str, Any]]:
        now_us = to_micros(container.clock())
        with container.db.transaction() as conn:
            secret = keys.create(conn, grant, now_us)
            info = next(k for k in keys.listed(conn) if k.grant.name == grant.name)
        return secret, info.as_json()

    try:
        secret, info = await run_in_threadpool(create)
    except KeyProblem as exc:
        raise _invalid(exc) from exc
    return JSONResponse({"key": info, "secret": secret}, 201)


@router.get("/keys")
def list_keys(container: ContainerDep, revoked: bool = False) -> dict[str, Any]:
    """Every key (never a secret), by name; `revoked=true`: revoked ones too."""
    with container.db.reading() as conn:
        found = keys.listed(conn, revoked=revoked)
    return {"items": [k.as_json() for k in found]}


@router.delete("/keys/{name}", responses=answers(404))
def revoke_key(container: ContainerDep, name: str) -> dict[str, Any]:
    """Revoke a key: every process refuses it within `ONEVOICE_KEY_CACHE_S` seconds. **404**
    when no active key has that name."""
    with container.db.transaction() as conn:
        done = keys.revoke(conn, name, to_micros(container.clock()))
    if not done:
        raise HTTPException(404, detail={"code": "key_not_found",
                                         "message": f"no active key named {name!r}"})  # fmt: skip
    if container.keys is not None:
        container.keys.forget()
    return {"revoked": name}


def _invalid(exc: KeyProblem) -> HTTPException:
    return HTTPException(
        422,
        detail={
            "code": "invalid_key",
            "message": str(exc),
            "fields": [{"path": exc.field, "problem": str(exc)}],
        },
    )
