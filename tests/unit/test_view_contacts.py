"""The view's relationships section: capped, most recently touched first, every contact counted."""

from __future__ import annotations

import json
from types import SimpleNamespace

from services.core.readmodels.view_facts import CONTACTS_SHOWN, relationships


def row(contact: int, actor: str, at_us: int, n: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        contact_key=f"id:c-{contact:02d}",
        actor_id=actor,
        event_id=f"ev-{contact}-{actor}",
        at_us=at_us,
        partition=0,
        offset=contact,
        n=n,
        n90=n,
        contact_pii=json.dumps({"id": f"c-{contact:02d}", "name": f"고객 {contact}"}),
        actor=json.dumps({"id": actor, "department": "sales"}),
    )


def test_the_fifty_most_recently_touched_contacts_are_shown_and_all_are_counted() -> None:
    rows = [row(i, "emp-a", 1_000_000 * i) for i in range(60)]
    rows.append(row(5, "emp-b", 10**12, n=3))  # contact 5 touched last, by a second person
    shown, total = relationships(rows)
    assert CONTACTS_SHOWN == 50
    assert total == 60
    keys = [c["contact_key"] for c in shown]
    assert keys[:3] == ["id:c-05", "id:c-59", "id:c-58"]
    assert len(keys) == 50 and keys[-1] == "id:c-11"  # c-10 .. c-00 (but c-05) left out
    five = shown[0]
    assert five["contact"] == {"id": "c-05", "name": "고객 5"}
    assert [(p["employee"]["id"], p["touches"]) for p in five["people"]] == [
        ("emp-b", 3), ("emp-a", 1)]  # fmt: skip
