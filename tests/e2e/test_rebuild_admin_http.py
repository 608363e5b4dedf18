"""The admin endpoints of rebuilds and the pipeline's status: answers, errors, states."""

from __future__ import annotations

import time

import httpx

from services.bootstrap import Services, build, build_app
from services.core.settings import Settings
from tests.conftest import AUTH, LiveServer, wait_projected
from tests.samples import make_event


def wait_state(client: httpx.Client, rebuild_id: str, *states: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        body = client.get(f"/v1/admin/rebuilds/{rebuild_id}").json()
        if body["state"] in states:
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_rebuild_endpoints_answer_and_refuse_clearly(
    client: httpx.Client, services: Services
) -> None:
    answers = [client.post("/v1/events", json=make_event(account_id=f"a-{i}")).json()
               for i in range(6)]  # fmt: skip
    wait_projected(services, *answers)
    status = client.get("/v1/admin/projections").json()
    timeline = next(p for p in status["projections"] if p["name"] == "AccountTimeline")
    assert (timeline["generation"], timeline["state"], timeline["lag"]) == (1, "live", 0)
    assert sum(p["checkpoint"] for p in timeline["partitions"]) == 6
    assert timeline["last_applied_at"].endswith("Z")

    bad = client.post("/v1/admin/rebuilds", json={"projections": ["Nope"]})
    problem = bad.json()["error"]["fields"][0]
    assert bad.status_code == 422 and problem["path"] == "body.projections"
    assert problem["problem"].startswith("unknown read model(s) Nope; one of: AccountTimeline")
    assert client.post("/v1/admin/rebuilds", json={"projections": []}).status_code == 422
    assert client.post("/v1/admin/rebuilds", json={"projections": "all", "x": 1}).status_code == 422
    assert client.get("/v1/admin/rebuilds/not-an-id").status_code == 422
    missing = client.get(f"/v1/admin/rebuilds/{'0' * 32}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "rebuild_not_found"
    none_kept = client.post("/v1/admin/rollback", json={"projections": ["OneVoiceView"]})
    assert (
        none_kept.status_code == 409
        and "no generation kept" in none_kept.json()["error"]["message"]
    )

    started = client.post("/v1/admin/rebuilds",
                          json={"projections": ["OneVoiceView"], "keep_old": True})  # fmt: skip
    assert started.status_code == 202
    rebuild = started.json()
    again = client.post("/v1/admin/rebuilds", json={"projections": ["OneVoiceView"]})
    assert again.status_code in (202, 409)  # 409 while it runs; 202 once it has switched
    done = wait_state(client, rebuild["id"], "switched")
    assert done["verification"]["result"] == "equal"  # type: ignore[index]
    if again.status_code == 202:
        wait_state(client, again.json()["id"], "switched", "failed")
    late = client.delete(f"/v1/admin/rebuilds/{rebuild['id']}")
    assert late.status_code == 409 and "switched already" in late.json()["error"]["message"]
    assert client.post(f"/v1/admin/rebuilds/{rebuild['id']}/accept").status_code == 409
    other = client.post("/v1/admin/rebuilds", json={"projections": ["LeadershipLog"]}).json()
    wait_state(client, other["id"], "switched")
    listed = client.get("/v1/admin/rebuilds", params={"limit": 1}).json()
    assert [r["id"] for r in listed["items"]] == [other["id"]]  # newest first
    rest = client.get("/v1/admin/rebuilds", params={"cursor": listed["next_cursor"]}).json()
    assert rebuild["id"] in {r["id"] for r in rest["items"]}
    if again.status_code == 409:
        back = client.post("/v1/admin/rollback", json={"projections": ["OneVoiceView"]})
        assert back.status_code == 200 and back.json() == {"generations": {"OneVoiceView": 1}}


def test_an_open_rebuild_can_be_cancelled_over_http(settings: Settings) -> None:
    """No projector runs here, so the rebuild stays open until the DELETE."""
    services = build(settings.model_copy(update={"run_projector": False}))
    try:
        with (
            LiveServer(build_app(services)) as base,
            httpx.Client(base_url=base, headers=AUTH) as client,
        ):
            started = client.post("/v1/admin/rebuilds", json={"projections": "all"})
            assert started.status_code == 202
            rebuild_id = started.json()["id"]
            status = client.get("/v1/admin/projections").json()["projections"]
            assert {p["state"] for p in status} == {"rebuilding"}
            assert {p["rebuild"] for p in status} == {rebuild_id}
            busy = client.post("/v1/admin/rebuilds", json={"projections": ["OneVoiceView"]})
            assert busy.status_code == 409 and rebuild_id in busy.json()["error"]["message"]
            cancelled = client.delete(f"/v1/admin/rebuilds/{rebuild_id}")
            assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
            status = client.get("/v1/admin/projections").json()["projections"]
            assert {p["state"] for p in status} == {"live"}
            again = client.post("/v1/admin/rebuilds", json={"projections": ["OneVoiceView"]})
            assert again.status_code == 202 and again.json()["generation"] == 3
    finally:
        services.close()
