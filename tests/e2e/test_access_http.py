"""Keys and scopes through real HTTP, on both backends: every key kind x every department x
every event type answers exactly 202, 401 or 403; refused requests append nothing (the log's
end offsets do not move); reads and admin routes need their scopes; each event records its key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bootstrap import Services
from services.core.events import EVENT_TYPES, department_of_type
from services.core.settings import Settings
from tests.conftest import AUTH, LiveServer, make_settings, wait_projected
from tests.samples import make_event

WRITERS: dict[str, dict[str, Any]] = {
    # name: what POST /v1/admin/keys gets besides the name
    "support-desk": {"write_departments": ["support"]},
    "campaigns": {"write_departments": ["marketing", "sales"],
                  "write_types": ["marketing.campaign_sent", "sales.email_sent"]},
    "dashboard": {"read": True},
    "operator": {"admin": True},
}  # fmt: skip
OPEN = ("/healthz", "/readyz", "/v1/schemas", "/openapi.json")
READS = ("/v1/accounts", "/v1/accounts/acme-kr/timeline", "/v1/accounts/acme-kr/view",
         "/v1/reports/coverage", "/v1/reports/leadership", "/v1/reports/kpi", "/v1/employees",
         "/v1/needs", "/v1/feed?employee=u-park", "/v1/kpi-targets")  # fmt: skip
ADMINS = ("/v1/admin/keys", "/v1/admin/dead-letters", "/v1/admin/projections",
          "/v1/admin/rebuilds")  # fmt: skip


@pytest.fixture
def keyed(client: httpx.Client, services: Services) -> Iterator[dict[str, str | None]]:
    """name -> secret of every key kind: the first key (``admin``, every scope), the writers,
    a reader, an admin-only key, a revoked key, an unknown key and none."""
    secrets: dict[str, str | None] = {"admin": AUTH["Authorization"][7:], "none": None,
                                      "unknown": "ov_" + "x" * 43}  # fmt: skip
    for name, grant in {**WRITERS, "revoked": {"read": True}}.items():
        made = client.post("/v1/admin/keys", json={"name": name, **grant})
        assert made.status_code == 201, made.text
        assert made.json()["key"]["name"] == name and made.json()["secret"].startswith("ov_")
        secrets[name] = made.json()["secret"]
    assert client.delete("/v1/admin/keys/revoked").json() == {"revoked": "revoked"}
    services.container.keys.forget()  # type: ignore[union-attr]
    yield secrets


def send(client: httpx.Client, method: str, path: str, secret: str | None,
         **kwargs: Any) -> httpx.Response:  # fmt: skip
    """A request with that key (None: no Authorization header at all, not even the test
    client's default one)."""
    request = client.build_request(method, path, **kwargs)
    if secret is None:
        del request.headers["Authorization"]
    else:
        request.headers["Authorization"] = f"Bearer {secret}"
    return client.send(request)


def expected_write(key: str, event_type: str, department: str) -> int:
    if key in ("none", "unknown", "revoked"):
        return 401
    if key == "admin":
        return 202
    grant = WRITERS[key]
    if department not in grant.get("write_departments", []):
        return 403
    types = grant.get("write_types")
    return 403 if types is not None and event_type not in types else 202


def combinations(settings: Settings) -> list[tuple[str, str]]:
    """Every (type, department) an event can validly have: a reserved type its department
    only; any other type every configured department."""
    return [(t, d) for t in EVENT_TYPES for d in settings.department_list
            if department_of_type(t) in (None, d)]  # fmt: skip


def test_every_key_kind_department_and_type_answers_as_its_scopes_say(
    client: httpx.Client, services: Services, settings: Settings, keyed: dict[str, str | None]
) -> None:
    topic = settings.topic
    log = services.container.log
    accepted: dict[str, str] = {}  # event id -> the key that wrote it
    wrong: list[tuple[str, str, str, int, str]] = []
    for event_type, department in combinations(settings):
        for key, secret in keyed.items():
            body = make_event(event_type)
            body["actor"] = {**body["actor"], "department": department}
            before = sum(log.end_offsets(topic).values())
            answer = send(client, "POST", "/v1/events", secret, json=body)
            want = expected_write(key, event_type, department)
            if answer.status_code != want:
                wrong.append((key, event_type, department, answer.status_code, answer.text))
                continue
            moved = sum(log.end_offsets(topic).values()) - before
            assert moved == (1 if want == 202 else 0), (key, event_type, department)
            if want == 202:
                accepted[answer.json()["event_id"]] = key
            else:
                error = answer.json()["error"]
                assert error["code"] == ("unauthenticated" if want == 401 else "forbidden")
                if want == 403 and not WRITERS[key].get("write_departments"):
                    assert error["fields"][0]["path"] == "header.Authorization"
                    assert "'write' scope" in error["message"]
                elif want == 403:
                    [field] = error["fields"]
                    assert field["path"] in ("actor.department", "type")
                    assert (department if field["path"] != "type" else event_type) \
                        in field["problem"]  # fmt: skip
    assert wrong == []
    assert set(accepted.values()) == {"admin", "support-desk", "campaigns"}
    # Every accepted event says which key wrote it.
    sample = {key: eid for eid, key in accepted.items()}
    for key, event_id in sample.items():
        for _ in range(200):
            stored = client.get(f"/v1/events/{event_id}")
            if stored.status_code == 200:
                break
            services.runner.wait_for({}, 0.05)
        assert stored.json()["recorded_by"] == key


def test_a_batch_with_one_refused_event_appends_none(
    client: httpx.Client, services: Services, settings: Settings, keyed: dict[str, str | None]
) -> None:
    log, topic = services.container.log, settings.topic
    before = log.end_offsets(topic)
    ok = make_event("support.ticket_opened")
    foreign = make_event("sales.meeting_held")
    answer = send(
        client,
        "POST",
        "/v1/events/batch",
        keyed["support-desk"],
        json={"events": [ok, ok | {"event_id": None}, foreign]},
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["fields"] == [{
        "path": "events[2].actor.department",
        "problem": "the key 'support-desk' may not write events of department 'sales' (it may"
                   " write: support)"}]  # fmt: skip
    assert log.end_offsets(topic) == before
    # The same events without the foreign one go through, and name their key; what a client
    # sends as recorded_by is replaced.
    answer = send(
        client,
        "POST",
        "/v1/events/batch",
        keyed["support-desk"],
        json={"events": [ok | {"recorded_by": "forged"}]},
    )
    assert answer.json()["accepted"] == 1, answer.text
    wait_projected(services, answer.json())
    stored = client.get(f"/v1/events/{ok['event_id']}").json()
    assert stored["recorded_by"] == "support-desk"
    # A retry through another key is the same event: a duplicate, not a conflict.
    again = client.post("/v1/events", json=ok)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")


def test_reads_admin_and_metrics_need_their_scopes(
    client: httpx.Client, services: Services, keyed: dict[str, str | None]
) -> None:
    posted = client.post("/v1/events", json=make_event(account_id="acme-kr")).json()
    wait_projected(services, posted)
    scopes = {"admin": {"read", "admin"}, "dashboard": {"read"}, "operator": {"admin"},
              "support-desk": set(), "campaigns": set()}  # fmt: skip
    wrong = []
    for key, secret in keyed.items():
        for paths, needs in ((READS, "read"), (ADMINS, "admin"), (("/metrics",), None),
                             (OPEN, "")):  # fmt: skip
            for path in paths:
                answer = send(client, "GET", path, secret)
                if needs == "":
                    want = 200
                elif key not in scopes:
                    want = 401
                elif needs is None or needs in scopes[key]:
                    want = 200
                else:
                    want = 403
                if answer.status_code != want:
                    wrong.append((key, path, answer.status_code, answer.text[:200]))
                if want == 401:
                    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert wrong == []


def test_keys_are_listed_without_secrets_and_bad_keys_are_refused_by_field(
    client: httpx.Client, keyed: dict[str, str | None]
) -> None:
    listed = client.get("/v1/admin/keys").json()["items"]
    assert [k["name"] for k in listed] == sorted(["admin", *WRITERS])
    everything = client.get("/v1/admin/keys?revoked=true")
    assert [k["name"] for k in everything.json()["items"]] == sorted(["admin", "revoked",
                                                                      *WRITERS])  # fmt: skip
    text = everything.text
    for secret in keyed.values():
        assert secret is None or secret not in text
    for body, field in (
        ({"name": "admin", "read": True}, "name"),  # names are never reused
        ({"name": "revoked", "read": True}, "name"),
        ({"name": "Bad Name", "read": True}, "name"),
        ({"name": "x", "write_departments": ["sales", "sorcery"]}, "write_departments"),
        ({"name": "x", "write_departments": ["sales"], "write_types": ["support.ticket_opened"]},
         "write_types"),
        ({"name": "x", "write_departments": ["sales"], "write_types": ["sales.nope"]},
         "write_types"),
        ({"name": "x"}, "scopes"),
        ({"name": "admin\n", "read": True}, "name"),  # "$" would have let it by
        ({"name": "x", "write_departments": ["sales"], "write_types": []}, "write_types"),
        ({"name": "x", "read": True, "write_rate": -1}, "write_rate"),
    ):  # fmt: skip
        answer = client.post("/v1/admin/keys", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["fields"][0]["path"] == field, answer.text
    assert client.delete("/v1/admin/keys/nobody").status_code == 404
    # The longest name fits the column (PostgreSQL enforces String(64)); one more is a 422.
    longest = "k" * 64
    assert client.post("/v1/admin/keys", json={"name": longest, "read": True}).status_code == 201
    too_long = client.post("/v1/admin/keys", json={"name": longest + "k", "read": True})
    assert too_long.status_code == 422 and too_long.json()["error"]["fields"][0]["path"] == "name"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None, "multipart/form-data"])  # fmt: skip
def test_ingest_reads_json_bodies_only(client: httpx.Client, content_type: str | None) -> None:
    sent = {} if content_type is None else {"Content-Type": content_type}
    import json

    answer = client.post("/v1/events", content=json.dumps(make_event()).encode(), headers=sent)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"]["fields"][0]["path"] == "header.Content-Type"
    vendor = client.post(
        "/v1/events",
        content=json.dumps(make_event()).encode(),
        headers={"Content-Type": "application/vnd.onevoice+json; charset=utf-8"},
    )
    assert vendor.status_code == 202, vendor.text


def test_no_cors_unless_origins_are_configured(tmp_path: Path) -> None:
    from services.bootstrap import build

    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}  # fmt: skip
    for origins, allowed in (("", None), ("https://crm.example.com", "https://crm.example.com")):
        services = build(make_settings(tmp_path / f"data{bool(origins)}", cors_origins=origins,
                                       run_projector=False))  # fmt: skip
        with LiveServer(services) as base, httpx.Client(base_url=base, headers=AUTH) as http:
            evil = http.options("/v1/events", headers=preflight)
            assert "access-control-allow-origin" not in evil.headers
            got = http.get("/v1/accounts", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in got.headers
            if allowed:
                ok = http.options("/v1/events", headers={**preflight, "Origin": allowed})
                assert ok.headers["access-control-allow-origin"] == allowed
                read = http.get("/v1/accounts", headers={"Origin": allowed})
                assert read.headers["access-control-allow-origin"] == allowed


def test_auth_disabled_is_explicit_and_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                              ) -> None:  # fmt: skip
    from services.bootstrap import build

    services = build(make_settings(tmp_path / "data", auth="disabled", run_projector=False))
    with LiveServer(services) as base, httpx.Client(base_url=base) as http:
        posted = http.post("/v1/events", json=make_event())
        assert posted.status_code == 202, posted.text
        assert http.get("/v1/admin/keys").json() == {"items": []}
    assert any("ONEVOICE_AUTH=disabled" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)  # fmt: skip
    assert not (tmp_path / "data" / "admin.key").exists()


def test_over_its_write_rate_a_key_gets_429_and_nothing_is_appended(settings: Settings) -> None:
    from services.bootstrap import build

    limited = settings.model_copy(update={"write_rate": 0.001, "max_batch": 3,
                                          "run_projector": False})  # fmt: skip
    services = build(limited)
    log, topic = services.container.log, limited.topic
    with LiveServer(services) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        fast = http.post("/v1/admin/keys", json={"name": "bulk", "write_departments": ["sales"],
                                                 "write_rate": 0}).json()["secret"]  # fmt: skip
        assert http.post("/v1/events/batch", json={"events": [make_event()] * 2}).status_code \
            == 200  # 2 of the burst of 3 (the batch size)  # fmt: skip
        before = log.end_offsets(topic)
        over = http.post("/v1/events/batch", json={"events": [make_event(), make_event()]})
        assert over.status_code == 429, over.text
        assert int(over.headers["retry-after"]) == 1000  # 1 token short at 0.001/s
        error = over.json()["error"]
        assert error["code"] == "rate_limited" and "0.001 events/s" in error["message"]
        assert http.post("/v1/events", json=make_event()).status_code == 202  # 1 still fits
        assert http.put("/v1/kpi-targets", json={
            "metric": "accounts_touched", "group_by": "department", "group": "sales",
            "period": "week", "target": 5, "actor": {"id": "e", "department": "leadership"},
        }).status_code == 429  # fmt: skip
        assert sum(log.end_offsets(topic).values()) == sum(before.values()) + 1
        # Another key has its own bucket (and here no limit at all).
        other = http.post("/v1/events/batch", json={"events": [make_event()] * 3},
                          headers={"Authorization": f"Bearer {fast}"})  # fmt: skip
        assert other.status_code == 200 and other.json()["accepted"] == 1  # 3 copies of one id


def test_odd_credentials_get_401_never_500(client: httpx.Client,
                                           keyed: dict[str, str | None]) -> None:  # fmt: skip
    for value in (
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "bearer ov_short",
        "ov_" + "a" * 43,
        "Bearer " + "ä" * 50,
        "Bearer " + "x" * 8000,
        f"Bearer {keyed['admin']}x",
    ):
        request = client.build_request("GET", "/v1/accounts")
        request.headers["Authorization"] = value.encode("utf-8").decode("latin-1")
        answer = client.send(request)
        assert answer.status_code == 401, (value[:30], answer.text)
        assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]
    assert send(client, "HEAD", "/v1/accounts", None).status_code == 401
    assert send(client, "GET", "/healthz/", None).status_code in (401, 404)  # not the probe
    # A key outside the department of a KPI target's actor may not set it.
    target = {
        "metric": "accounts_touched",
        "group_by": "department",
        "group": "sales",
        "period": "week",
        "target": 5,
        "actor": {"id": "e-1", "department": "leadership"},
    }
    refused = send(client, "PUT", "/v1/kpi-targets", keyed["support-desk"], json=target)
    assert refused.status_code == 403, refused.text
