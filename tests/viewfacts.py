"""Builders of the one-voice rules' facts, shared by the rules and health unit tests."""

from __future__ import annotations

from types import EllipsisType
from typing import Any

from services.core.view_rules import Commitment, ExecutiveTouch, Message, Ticket


def commitment(
    cid: str, *, made_us: int | None, due_us: int | None = None, closed_us: int | None = None
) -> Commitment:
    return Commitment(
        commitment_id=cid,
        made_event_id=f"ev-{cid}",
        made_us=made_us,
        text=f"promise {cid}",
        made_by={"id": "emp-1"},
        department="sales",
        due_us=due_us,
        closed_state=None if closed_us is None else "fulfilled",
        closed_event_id=None if closed_us is None else f"ev-{cid}-closed",
        closed_us=closed_us,
    )


def ticket(
    tid: str,
    *,
    opened_us: int | None,
    category: str | None = "Billing",
    category_key: str | EllipsisType | None = ...,
    complaint: bool = True,
    severity: str | None = "normal",
    resolved_us: int | None = None,
) -> Ticket:
    return Ticket(
        ticket_id=tid,
        opened_event_id=f"ev-{tid}",
        opened_us=opened_us,
        subject=f"subject {tid}",
        category=category,
        category_key=(None if category is None else category.casefold())
        if category_key is ...
        else category_key,
        severity=severity,
        complaint=complaint,
        resolved_us=resolved_us,
    )


def message(
    event_id: str,
    *,
    at_us: int,
    kind: str = "proposal",
    ref_id: str = "P-1",
    product: str | None = "OneVoice Cloud",
    product_key: str | None = "onevoice cloud",
    discount_pct: float | None = None,
    terms: str | None = None,
    valid_until_us: int | None = None,
    department: str = "sales",
    offset: int = 0,
) -> Message:
    return Message(
        event_id=event_id,
        kind=kind,
        ref_id=ref_id,
        name=None,
        channel=None,
        product=product,
        product_key=product_key,
        discount_pct=discount_pct,
        terms=terms,
        amount=None,
        currency=None,
        valid_until_us=valid_until_us,
        department=department,
        actor={"id": f"emp-{department}"},
        summary=None,
        sort_key=(at_us, 0, offset),
    )


def exec_touch(event_id: str, at_us: int, **details: Any) -> ExecutiveTouch:
    return ExecutiveTouch(
        event_id=event_id,
        at_us=at_us,
        executive={"id": "ceo", "name": "Kim"},
        type="meeting.held",
        summary=None,
        details=details,
    )
