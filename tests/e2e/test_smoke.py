from __future__ import annotations

import httpx

from services.bootstrap import Services
from tests.conftest import wait_projected
from tests.samples import make_event


def test_post_then_read_korean_event(client: httpx.Client, services: Services) -> None:
    body = make_event("support.ticket_opened", summary="결제 오류로 인한 불만 접수")
    answer = client.post("/v1/events", json=body)
    assert answer.status_code == 202, answer.text
    wait_projected(services, answer.json())
    page = client.get("/v1/accounts/acme-kr/timeline").json()
    assert [item["event_id"] for item in page["items"]] == [body["event_id"]]
    assert page["items"][0]["summary"] == "결제 오류로 인한 불만 접수"
