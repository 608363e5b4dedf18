"""``DELETE /v1/admin/contacts``: erase a contact's personal data (admin scope; README,
Erasure)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.api.auth import grant_of
from services.api.deps import ContainerDep
from services.core.events import AccountId, Actor, Email, ShortText, field_errors
from services.core.ports import LogUnavailable
from services.core.privacy.erasure import NothingToErase, erase
from services.core.privacy.vault import AmbiguousContact
from services.core.problems import answers

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ErasureRequest(BaseModel):
    """The contact to erase: its account and its email or its id (one of them). In the body,
    not the address, so the email stays out of access logs."""

    model_config = ConfigDict(extra="forbid")
    account_id: AccountId = Field(description="The account the contact's events were posted on.")
    email: Email | None = Field(default=None, description="The contact's email (any case).")
    contact_id: ShortText | None = Field(default=None, description="The contact's id.")
    without_id: bool = Field(
        default=False,
        description="With `email`: only the records with"
        " that email that carry no contact id (a shared mailbox).",
    )
    actor: Actor | None = Field(default=None, description="Who asked, recorded with the event"
                                " (optional: the key's name is recorded anyway).")  # fmt: skip

    @model_validator(mode="after")
    def _one_name(self) -> ErasureRequest:
        if (self.email is None) == (self.contact_id is None):
            raise ValueError("give the contact's email or its contact_id (one of them)")
        if self.without_id and self.email is None:
            raise ValueError("without_id goes with email")
        return self


@router.delete("/contacts", status_code=200, responses=answers(404, 409))
def erase_contact(request: Request, container: ContainerDep,
                  asked: Annotated[ErasureRequest, Body()]) -> dict[str, Any]:  # fmt: skip
    """Erase a contact's personal data (name, email, title) everywhere: its keys are destroyed,
    so every sealed copy — the log, every view, every replay and rebuild — reads `[erased]`
    from now on; a `contact.erased` event records it (never the email). Body: `account_id`
    and `email` or `contact_id`; optional `actor`. **200** `{account_id, subjects, events}`:
    how many keys were destroyed, and the events with their positions. **404** no sealed
    contact of that account has that email or id (contacts appended before sealing began, or
    erased already: README, Erasure). **409** the email was met with several contact ids:
    erase each by `contact_id`, and the records without an id with `without_id: true`.
    **503** the log or the database is unavailable: retry (nothing was destroyed before the
    event was durable)."""
    settings = container.settings
    try:
        done = erase(container.vault, container.log, settings.topic, container.clock(),
                     asked.account_id, email=asked.email, contact_id=asked.contact_id,
                     without_id=asked.without_id,
                     recorded_by=grant_of(request).name, source="erasure-api",
                     actor=None if asked.actor is None else
                     asked.actor.model_dump(exclude_none=True),
                     departments=settings.department_list)  # fmt: skip
    except NothingToErase as exc:
        named = "email" if asked.email is not None else "contact_id"
        raise HTTPException(404, detail={
            "code": "contact_not_found",
            "message": f"no sealed contact of account {asked.account_id!r} has that {named}:"
                       " none was posted, it was erased already, or it was posted before"
                       " contacts were sealed (README, Erasure)",
            "fields": [{"path": named, "problem": "no sealed contact of the account has it"}],
        }) from exc  # fmt: skip
    except AmbiguousContact as exc:
        raise HTTPException(409, detail={
            "code": "ambiguous_contact",
            "message": f"{exc}: erase each by contact_id, and the records without an id by"
                       " email with without_id (a shared mailbox would otherwise erase several"
                       " people)",
            "fields": [{"path": "email", "problem": "names more than one contact"}],
        }) from exc  # fmt: skip
    except ValidationError as exc:  # the actor names a department the contract refuses
        raise HTTPException(
            422,
            detail={
                "code": "invalid_request",
                "message": "the erasure request is not valid",
                "fields": field_errors(exc),
            },
        ) from exc
    except LogUnavailable as exc:  # the cause names brokers: the log has it
        log.warning("erasure not recorded: the log is unavailable: %s", exc)
        raise HTTPException(503, detail={"code": "log_unavailable", "message": "the log is"
                                         " unavailable; the erasure did not complete: retry"},
                            headers={"Retry-After": "1"}) from exc  # fmt: skip
    return done.as_json()
