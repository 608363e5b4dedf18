"""The leaders' reports at their edges, on both backends (issue 11; found by review): who is an
executive when the events do not say, signals followed up after their week, a reopened
complaint, events dated after now, windows near year 1, bad targets.

Clock: FIXED_NOW = 2026-11-23T01:00:00Z (Monday 10:00 in Asia/Seoul); the week of 11-16 runs
from 2026-11-15T15:00Z to 2026-11-22T15:00Z.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.core.settings import Settings
from tests.e2e.test_view_http import KIM, LEE, PARK, Live, call, ev, register, running
from tests.samples import make_event

HR = {"id": "emp-shin", "department": "hr"}
WEEK = {"from": "2026-11-15T15:00:00Z", "to": "2026-11-22T15:00:00Z"}


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    with running(settings, "Asia/Seoul") as started:
        yield started


def employee(kind: str, at: str, **payload: Any) -> dict[str, Any]:
    return make_event(kind, occurred_at=at, actor=HR, payload=payload)


def test_the_roster_decides_who_is_an_executive(live: Live) -> None:
    yoo = {"id": "emp-yoo", "department": "sales"}  # the CRM sends no title, no flag
    live.load([
        register("hanbit", "한빛소프트"),
        employee("employee.registered", "2026-01-01T00:00:00Z", employee_id="emp-yoo",
                 name="유재석", department="sales", title="VP Sales"),
        call("hanbit", "2026-11-17T01:00:00Z", yoo),
        # HR's explicit "not an executive" stands, whatever a later title says ...
        employee("employee.registered", "2026-01-01T00:00:00Z", employee_id="emp-ko",
                 name="고아라", department="partner", title="VP (honorary)", executive=False),
        employee("employee.updated", "2026-02-01T00:00:00Z", employee_id="emp-ko",
                 title="VP Partnerships"),
        # ... a demotion takes the title rule away ...
        employee("employee.registered", "2026-01-01T00:00:00Z", employee_id="emp-nam",
                 name="남궁민", department="sales", title="VP Sales"),
        employee("employee.updated", "2026-03-01T00:00:00Z", employee_id="emp-nam",
                 title="Account Manager"),
        # ... and someone seen only in events keeps who they were when HR only updates them.
        ev("leadership.meeting_held", "hanbit", "2026-11-10T01:00:00Z",
           {"id": "emp-jin", "name": "진", "department": "leadership"}, {"subject": "인사"}),
        employee("employee.updated", "2026-11-11T00:00:00Z", employee_id="emp-jin",
                 title="Chairman"),
    ])  # fmt: skip
    executives = live.get("/v1/employees", executive="true")["items"]
    assert [(e["employee_id"], e["department"]) for e in executives] == [
        ("emp-jin", "leadership"), ("emp-yoo", "sales")]  # fmt: skip
    report = live.get("/v1/reports/leadership", **WEEK)["executives"]
    yoo_entry = next(e for e in report if e["executive"]["id"] == "emp-yoo")
    # The call's actor carried no flag, so the LeadershipLog did not record it: the roster does.
    assert yoo_entry["counts"]["customers_met"] == 1 and yoo_entry["counts"]["touches"] == 1
    assert [t["account_id"] for t in yoo_entry["touches"]] == ["hanbit"]
    jin = next(e for e in report if e["executive"]["id"] == "emp-jin")
    assert (jin["counts"]["customers_met"], jin["previous"]["customers_met"]) == (0, 1)
    assert jin["executive"]["title"] == "Chairman" and jin["registered"] is False


def test_a_signal_followed_up_after_its_week_counts_in_its_week(live: Live) -> None:
    cto = {"id": "c-1", "name": "오세훈"}
    live.load([
        register("hanbit", "한빛소프트", owners={"sales": "emp-park"}),
        # Sunday 20:00 in Seoul, the week's last evening; the rep calls on Monday morning.
        ev("marketing.campaign_responded", "hanbit", "2026-11-22T11:00:00Z", LEE,
           {"campaign_id": "C-1", "response": "데모 요청"}, contacts=[cto]),
        ev("sales.call_logged", "hanbit", "2026-11-23T00:30:00Z", PARK, {"subject": "데모"},
           contacts=[cto]),
    ])  # fmt: skip
    kpi = live.get("/v1/reports/kpi", group_by="owner", **{"from": WEEK["from"]})["periods"]
    figures = {p["period"]: p["groups"] for p in kpi}
    (park,) = [g for g in figures["2026-11-16"] if g["group"] == "emp-park"]
    assert park["figures"]["handoffs_followed_up"]["value"] == 1
    (park_now,) = [g for g in figures["2026-11-23"] if g["group"] == "emp-park"]
    assert park_now["figures"]["handoffs_followed_up"]["value"] == 0


def test_complaints_count_neither_a_tickets_own_fix_nor_the_future(live: Live) -> None:
    def opened(at: str, ticket: str) -> dict[str, Any]:
        return ev("support.ticket_opened", "hanbit", at, KIM, {
            "ticket_id": ticket, "subject": "청구 오류", "category": "billing",
            "severity": "high", "complaint": True})  # fmt: skip

    live.load([
        register("hanbit", "한빛소프트"),
        opened("2026-11-02T01:00:00Z", "T-7"),
        ev("support.ticket_resolved", "hanbit", "2026-11-03T01:00:00Z", KIM, {
            "ticket_id": "T-7", "prevention": {"action": "중복 검사"}}),
        opened("2026-11-17T01:00:00Z", "T-7"),  # T-7 reopened: its own fix is no recurrence
        opened("2026-11-23T12:00:00Z", "T-8"),  # dated tonight: not yet
    ])  # fmt: skip
    report = live.get("/v1/reports/complaints", **{"from": WEEK["from"]})["periods"]
    totals = {p["period"]: p["total"] for p in report}
    assert totals["2026-11-16"]["opened"] == 1
    assert totals["2026-11-16"]["recurrences_after_fix"] == 0
    assert totals["2026-11-23"]["opened"] == 0


def test_a_contact_dated_after_now_does_not_hide_silence(live: Live) -> None:
    live.load([
        register("hanbit", "한빛소프트", owners={"sales": "emp-park"}),
        call("hanbit", "2026-10-01T01:00:00Z"),
        call("hanbit", "2026-11-23T20:00:00Z"),  # tomorrow morning in Seoul
    ])  # fmt: skip
    (item,) = live.get("/v1/reports/coverage")["silent_employees"]["items"]
    assert item["employee"]["id"] == "emp-park"
    assert item["last_customer_contact"]["at"] == "2026-10-01T01:00:00Z"
    assert live.get("/v1/feed", employee="emp-park")["habit"]["silent"] is True


def test_kpi_departments_show_accounts_nobody_owns_or_touched(live: Live) -> None:
    live.load([register("orphan", "무소속", segment="smb")])
    kpi = live.get("/v1/reports/kpi")["periods"][-1]["groups"]
    (nobody,) = [g for g in kpi if g["group"] is None]
    assert nobody["figures"]["accounts_never_contacted"]["value"] == 1
    # Periods that have not begun have no figures: the report stops at this week.
    ahead = live.get("/v1/reports/kpi", to="2026-12-14T00:00:00Z")["periods"]
    assert [p["period"] for p in ahead][-1] == "2026-11-23"
    assert ahead[-1]["as_of"] == "2026-11-23T01:00:00Z"  # now, not the week's end


BAD_WINDOWS = [
    ("/v1/reports/voice", {"from": "0001-01-01T00:00:00Z", "to": "0001-01-08T00:00:00Z"}, "from"),
    ("/v1/reports/leadership", {"from": "0001-01-01T00:00:00Z", "to": "0001-01-08T00:00:00Z"},
     "from"),
    ("/v1/reports/complaints", {"from": "0001-02-01T00:00:00Z", "to": "0001-03-01T00:00:00Z"},
     "from"),
    ("/v1/reports/kpi", {"from": "0001-02-01T00:00:00Z", "to": "0001-03-01T00:00:00Z"}, "from"),
    ("/v1/reports/handoffs", {"to": "0001-01-20T00:00:00Z"}, "to"),
    ("/v1/reports/kpi", {"from": "2025-01-01T00:00:00Z", "period": "week"}, "from"),  # > 26
]  # fmt: skip


def test_windows_that_cannot_be_computed_are_422(live: Live) -> None:
    wrong = {}
    for path, params, field in BAD_WINDOWS:  # one app for every case: starting one costs seconds
        answer = live.http.get(path, params=params)
        fields = [f["path"] for f in answer.json()["error"]["fields"]] \
            if answer.status_code == 422 else answer.text  # fmt: skip
        if fields != [f"query.{field}"]:
            wrong[(path, str(params))] = (answer.status_code, fields)
    assert wrong == {}


def test_a_target_must_name_a_group_it_can_judge(live: Live) -> None:
    target = {"metric": "accounts_touched", "group_by": "department", "group": "sales",
              "period": "week", "target": 5, "actor": {"id": "emp-choi",
                                                       "department": "leadership"}}  # fmt: skip
    for body, field in (
        ({**target, "group": "operations"}, "group"),
        ({**target, "event_id": "9d4c8a4e-8c43-4f1e-9f55-0d2a1f0b6a11"}, "occurred_at"),
        ({**target, "event_id": "9d4c8a4e-8c43-4f1e-9f55-0d2a1f0b6a11", "occurred_at": None},
         "occurred_at"),
        ({**target, "target": -1}, "target"),
        ({**target, "actor": None}, "actor"),
    ):  # fmt: skip
        answer = live.http.put("/v1/kpi-targets", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert [f["path"] for f in answer.json()["error"]["fields"]] == [field], answer.text
    retry = {**target, "event_id": "9d4c8a4e-8c43-4f1e-9f55-0d2a1f0b6a11",
             "occurred_at": "2026-11-20T00:00:00Z"}  # fmt: skip
    first = live.http.put("/v1/kpi-targets", json=retry)
    assert first.status_code == 202, first.text
    again = live.http.put("/v1/kpi-targets", json=retry)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    token = {"X-Consistency-Token": first.json()["consistency_token"]}  # read your write
    stored = live.http.get(f"/v1/events/{retry['event_id']}", headers=token)
    assert stored.status_code == 200, stored.text
    assert stored.json()["type"] == "kpi.target_set" and "account_id" not in stored.json()


def test_the_longest_values_the_contract_allows_are_stored(live: Live) -> None:
    """Every ReportFacts column at the contract's limits, on PostgreSQL too (which enforces
    lengths SQLite ignores): 256-character ids, names, titles, groups and categories, Korean."""
    long_id, long_text = "직" * 256, "고객의 목소리 " * 1250  # 256 characters; 10,000 characters
    account = "a" * 128
    live.load([
        employee("employee.registered", "2026-11-01T00:00:00Z", employee_id=long_id,
                 name="이" * 256, department="leadership", title="대표" * 128),
        make_event("kpi.target_set", occurred_at="2026-11-01T00:00:00Z", actor=HR, payload={
            "metric": "csat_average", "group_by": "segment", "group": "세" * 256,
            "period": "month", "target": 4.5}),
        ev("support.ticket_opened", account, "2026-11-20T01:00:00Z",
           {"id": long_id, "department": "support"}, {
               "ticket_id": "T" * 256, "subject": "불" * 256, "category": "ß" * 256,
               "severity": "urgent", "complaint": True}),
        ev("success.review_held", account, "2026-11-20T02:00:00Z", PARK | {"department":
           "success"}, {"subject": "QBR", "risks": [long_text]}),
    ])  # fmt: skip
    (person,) = [e for e in live.get("/v1/employees")["items"] if e["employee_id"] == long_id]
    assert person["executive"] and person["last_customer_contact"]["account_id"] == account
    (target,) = live.get("/v1/kpi-targets")["items"]
    assert target["group"] == "세" * 256
    voice = live.get("/v1/reports/voice")["groups"]
    themes = {g["kind"]: g for g in voice}
    assert themes["complaint"]["theme"] == "ß" * 256  # its case-folded key is 512 long: Text
    assert themes["success_risk"]["items"][0]["text"] == long_text
