"""``make demo`` leaves data that makes every leaders' report non-empty (issue 11), on both
backends, with the clock stopped at FIXED_NOW in Asia/Seoul."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.core.settings import Settings
from services.demo import STORY, build_events
from tests.e2e.test_view_http import FIXED_NOW, Live, running


@pytest.fixture
def demo(settings: Settings) -> Iterator[Live]:
    with running(settings, "Asia/Seoul") as live:
        live.load(build_events(FIXED_NOW))
        yield live


def test_every_report_has_something_to_show(demo: Live) -> None:
    e = {row[0]: event for row, event in zip(STORY, build_events(FIXED_NOW), strict=True)}
    # The CEO met Hanbit at the dinner four days ago; the VP registered 60 days ago met nobody.
    leaders = {x["executive"]["id"]: x for x in demo.get("/v1/reports/leadership")["executives"]}
    assert set(leaders) == {"emp-choi", "emp-yoo"}
    assert leaders["emp-choi"]["counts"]["customers_met"] == 1
    assert leaders["emp-yoo"]["counts"] == {k: 0 for k in leaders["emp-yoo"]["counts"]}
    voice = demo.get("/v1/reports/voice")
    assert {(g["kind"], g["theme"], g["count"]) for g in voice["groups"] if g["count"]} == {
        ("executive_concern", "executive_concern", 2), ("complaint", "billing", 1),
        ("executive_complaint", "executive_complaint", 1), ("low_csat", "low_csat", 1),
        ("need", "reporting", 1), ("success_risk", "success_risk", 1),
    }  # fmt: skip
    complaints = demo.get("/v1/reports/complaints")["periods"]
    assert [
        (p["period"], p["total"]["opened"], p["total"]["recurrences_after_fix"])
        for p in complaints
        if p["total"]["opened"]
    ] == [("2026-10-05", 1, 0), ("2026-11-16", 1, 1)]  # T-3101, then T-3388 after its fix
    handoffs = demo.get("/v1/reports/handoffs")
    assert (handoffs["total"]["signals"], handoffs["total"]["followed_up_in_time"],
            handoffs["total"]["stale"]) == (2, 1, 1)  # fmt: skip
    assert [i["event_id"] for i in handoffs["left"]["items"]] == [e["seminar"]["event_id"]]
    kpi = demo.get("/v1/reports/kpi")["periods"]
    sales = [next(g for g in p["groups"] if g["group"] == "sales") for p in kpi]
    assert all(s["figures"]["accounts_touched"]["target"] == 5 for s in sales)
    assert {s["figures"]["accounts_touched"]["met"] for s in sales} == {False}
    coverage = demo.get("/v1/reports/coverage")["silent_employees"]
    assert [i["employee"]["id"] for i in coverage["items"]] == ["emp-yoo", "emp-smith"]
    assert len(demo.get("/v1/kpi-targets")["items"]) == 2
    csv = demo.http.get("/v1/reports/voice", params={"format": "csv"})
    assert csv.status_code == 200 and "가격 인상 우려" in csv.content.decode("utf-8-sig")


def test_the_coverage_report_as_a_spreadsheet(demo: Live) -> None:
    answer = demo.http.get("/v1/reports/coverage", headers={"accept": "text/csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    lines = answer.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "section,account_id,account_name,employee_id,at,details"
    sections = [line.split(",", 1)[0] for line in lines[1:]]
    report = demo.get("/v1/reports/coverage")
    assert sections == [name for name, value in report.items()
                        if isinstance(value, dict) and "items" in value
                        for _ in value["items"]]  # fmt: skip
    assert "neglected,northwind,Northwind Traders,," in "\n".join(lines)
    assert any(line.startswith("silent_employees,,,emp-yoo,,") for line in lines)
