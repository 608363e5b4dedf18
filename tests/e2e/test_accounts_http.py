"""GET /v1/accounts over HTTP on both backends: order, filters, pagination, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import REGISTRY

from services.bootstrap import Services
from tests.conftest import wait_projected
from tests.samples import make_event

NOW = datetime.now(UTC)


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def register(account_id: str, name: str, days: float, **payload: Any) -> dict[str, Any]:
    return make_event("account.registered", account_id=account_id, occurred_at=ago(days),
                      payload={"name": name, **payload}, summary=None)  # fmt: skip


def touch(account_id: str, department: str, days: float, **extra: Any) -> dict[str, Any]:
    kind = {"sales": "sales.call_logged", "support": "support.csat_recorded",
            "leadership": "leadership.meeting_held"}[department]  # fmt: skip
    return make_event(kind, account_id=account_id, occurred_at=ago(days),
                      summary=f"{department} {days}d", **extra)  # fmt: skip


def load(client: httpx.Client, services: Services, events: list[dict[str, Any]]) -> None:
    answer = client.post("/v1/events/batch", json={"events": events})
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text
    wait_projected(services, answer.json())


def ids(client: httpx.Client, **params: Any) -> list[str]:
    answer = client.get("/v1/accounts", params=params)
    assert answer.status_code == 200, answer.text
    return [item["account_id"] for item in answer.json()["items"]]


STORY = [
    register("hanbit-a", "한빛전자", 300, segment="enterprise",
             owners={"sales": "emp-park", "support": "emp-kim"}),
    touch("hanbit-a", "sales", 10),
    touch("hanbit-a", "support", 2),
    register("quiet-b", "Quiet Bakery", 5, segment="smb"),
    touch("cold-c", "sales", 40),
    touch("delta-d", "leadership", 200),
    touch("delta-d", "sales", 1),
]  # fmt: skip


def test_order_touches_and_registration(client: httpx.Client, services: Services) -> None:
    load(client, services, STORY)
    assert ids(client) == ["delta-d", "hanbit-a", "cold-c", "quiet-b"]
    assert ids(client, sort="name") == ["cold-c", "delta-d", "quiet-b", "hanbit-a"]
    (a,) = [i for i in client.get("/v1/accounts").json()["items"] if i["account_id"] == "hanbit-a"]
    assert a["registered"] is True and a["name"] == "한빛전자" and a["segment"] == "enterprise"
    assert a["owners"] == {"sales": "emp-park", "support": "emp-kim"}
    assert a["last_touch"]["event_id"] == STORY[2]["event_id"]
    assert a["last_touch"]["at"] == STORY[2]["occurred_at"].replace("+00:00", "Z")
    by_department = a["last_touch_by_department"]
    assert {d: t["event_id"] for d, t in by_department.items()} == {
        "sales": STORY[1]["event_id"], "support": STORY[2]["event_id"]}  # fmt: skip
    assert by_department["sales"]["actor"]["name"] == "박영희"


def test_filters(client: httpx.Client, services: Services) -> None:
    load(client, services, STORY)
    assert ids(client, q="한빛") == ["hanbit-a"]
    assert ids(client, q="BAKERY") == ["quiet-b"]
    assert ids(client, q="cold") == ["cold-c"]
    assert ids(client, owner="emp-park") == ["hanbit-a"]
    assert ids(client, segment="smb") == ["quiet-b"]
    assert ids(client, neglected_for="30d") == ["cold-c", "quiet-b"]
    assert ids(client, neglected_for="41d") == ["quiet-b"]
    assert ids(client, never_contacted="true") == ["quiet-b"]
    assert ids(client, never_contacted="false") == ["delta-d", "hanbit-a", "cold-c"]
    everyone = ["delta-d", "hanbit-a", "cold-c", "quiet-b"]
    assert ids(client, silent_department="leadership", silent_for="180d") == everyone
    assert ids(client, silent_department="leadership", silent_for="365d") == everyone[1:]
    assert ids(client, silent_department="support") == ["delta-d", "cold-c", "quiet-b"]


def test_pages_visit_every_account_once(client: httpx.Client, services: Services) -> None:
    load(client, services, STORY)
    for sort in ("last_touch", "name"):
        seen, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 1, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/accounts", params=params).json()
            seen += [i["account_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids(client, sort=sort)


def test_the_latest_registration_wins_whatever_the_arrival_order(
    client: httpx.Client, services: Services
) -> None:
    newer = register("renamed", "새 이름", 1, tier="gold", owners={"sales": "emp-new"})
    older = register("renamed", "옛 이름", 100, tier="silver", owners={"sales": "emp-old"})
    load(client, services, [newer])
    load(client, services, [older])
    (item,) = client.get("/v1/accounts", params={"q": "이름"}).json()["items"]
    assert (item["name"], item["tier"], item["owners"]) == ("새 이름", "gold", {"sales": "emp-new"})
    assert ids(client, owner="emp-old") == []


def test_bad_queries_name_the_parameter(client: httpx.Client, services: Services) -> None:
    load(client, services, STORY[:2])
    name_cursor = client.get("/v1/accounts", params={"limit": 1, "sort": "name"})
    cases = [
        ({"neglected_for": "30 days"}, "query.neglected_for"),
        ({"silent_department": "operations"}, "query.silent_department"),
        ({"silent_for": "30d"}, "query.silent_for"),
        ({"cursor": "garbage"}, "query.cursor"),
        ({"cursor": name_cursor.json()["next_cursor"] or "x"}, "query.cursor"),
        ({"limit": 0}, "query.limit"),
        ({"sort": "risk"}, "query.sort"),
        ({"at_risk": "maybe"}, "query.at_risk"),
    ]
    for params, path in cases:
        answer = client.get("/v1/accounts", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["error"]["fields"][0]["path"] == path, params


def test_include_children_rolls_the_hierarchy_into_the_parent(
    client: httpx.Client, services: Services
) -> None:
    events = [
        register("group", "한빛그룹", 50),
        register("child-1", "한빛전자", 50, parent_account_id="group"),
        register("child-2", "한빛물산", 50, parent_account_id="group"),
        register("grandchild", "한빛전자 부산", 50, parent_account_id="child-1"),
        register("loop", "Loop", 50, parent_account_id="grandchild"),
        touch("group", "leadership", 9),
        touch("child-1", "sales", 8, related_account_ids=["group"]),
        touch("child-2", "support", 7),
        touch("grandchild", "sales", 6),
        touch("unrelated", "sales", 5),
    ]
    load(client, services, events)
    plain = client.get("/v1/accounts/group/timeline", params={"order": "asc"}).json()
    assert "included_accounts" not in plain
    assert [i["event_id"] for i in plain["items"]] == [events[0]["event_id"],
                                                       events[5]["event_id"],
                                                       events[6]["event_id"]]  # fmt: skip
    rolled = client.get(
        "/v1/accounts/group/timeline", params={"order": "asc", "include_children": "true"}
    ).json()
    assert rolled["included_accounts"] == ["child-1", "child-2", "grandchild", "loop"]
    expected = [e["event_id"] for e in events[:9]]  # registrations share a time: by position
    got = [i["event_id"] for i in rolled["items"]]
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))
    assert got[-4:] == [e["event_id"] for e in events[5:9]]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"order": "asc", "include_children": "true", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/accounts/group/timeline", params=params).json()
        seen += [i["event_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == got
    type_filtered = client.get(
        "/v1/accounts/group/timeline",
        params={"include_children": "true", "department": "sales", "type": "sales.call_logged"},
    ).json()
    assert [i["event_id"] for i in type_filtered["items"]] == [events[8]["event_id"],
                                                               events[6]["event_id"]]  # fmt: skip


def _read_evaluations() -> float:
    return REGISTRY.get_sample_value("onevoice_health_evaluations_total", {"by": "read"}) or 0.0


def test_health_reads_come_from_the_cache_and_a_write_is_seen_at_once(
    client: httpx.Client, services: Services
) -> None:
    load(client, services, STORY)
    services.health_refresher.refresh_all()
    before = _read_evaluations()
    for params in ({"sort": "health"}, {"at_risk": "true"}, {"sort": "value"},
                   {"renewal_within": "30d"}, {"sort": "name"}):  # fmt: skip
        assert client.get("/v1/accounts", params=params).status_code == 200
    assert client.get("/v1/reports/coverage").status_code == 200
    assert _read_evaluations() == before  # every account answered from the cache
    health = {
        i["account_id"]: i["health"]["score"]
        for i in client.get("/v1/accounts", params={"sort": "health"}).json()["items"]
    }
    neglected_score = health["cold-c"]  # touched 40 days ago: neglected
    # The projector marks the account stale in the batch's transaction: whether or not the
    # refresher got to it yet, the next read sees the touch.
    load(client, services, [touch("cold-c", "sales", 0)])
    health = {
        i["account_id"]: i["health"]["score"]
        for i in client.get("/v1/accounts", params={"sort": "health"}).json()["items"]
    }
    assert health["cold-c"] == neglected_score + 25  # the neglect penalty is gone
    neglected = client.get("/v1/reports/coverage").json()["neglected"]["items"]
    assert "cold-c" not in [i["account_id"] for i in neglected]
