"""Every operation of the API, fuzzed from its own description (``/openapi.json``), over HTTP.

Schemathesis draws requests from each operation's documented parameters and bodies: valid
ones, and ones that break the schema (wrong types, out-of-range numbers, odd Unicode and
surrogates, huge or empty strings, missing fields), plus each request once without a key. Every
answer must stay inside the contract:
- never a 5xx for what a client sent (``not_a_server_error``);
- only status codes the operation documents (``status_code_conformance``: ``api.openapi``
  documents the errors every operation can give, each route the ones only it gives);
- the documented media type and response headers, and bodies matching the documented schema,
  the one error shape included (``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
- 401 without a key, except on the open paths (``missing_required_header``).
Not checked: ``positive_data_acceptance`` (a schema cannot say what a valid cursor, consistency
token or registered department is, so schema-valid requests are refused by design),
``negative_data_rejection`` for the batch (it answers 200 per item, by design),
``unsupported_method`` (``GET /v1/events/batch`` is ``GET /v1/events/{event_id}`` with an id
that is not a UUID: 422, not 405) and ``allow_header_conformance`` (Starlette names one
route's methods in a 405 when two routes share a path).

Both backends: on Kafka + PostgreSQL the drawn strings reach PostgreSQL, which refuses what
SQLite lets through (NUL, lone surrogates, over-long values). Draws are derandomized, so a run
is repeatable; ``ONEVOICE_TEST_FUZZ_EXAMPLES`` sets how many per operation (default 15).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.bootstrap import build
from tests import backends
from tests.conftest import AUTH, BACKENDS, LiveServer, make_settings
from tests.samples import make_event

EXAMPLES = int(os.environ.get("ONEVOICE_TEST_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance,
          missing_required_header, negative_data_rejection]  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def live_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:  # fmt: skip
    """One running app per backend for the whole module, with a few real events in it (a
    Korean account story), so some drawn reads find something."""
    data = tmp_path_factory.mktemp("fuzz") / "data"
    with _database(request) as database_url:
        overrides: dict[str, Any] = {}
        if request.param == "kafka":
            overrides = {
                "log_backend": "kafka",
                "kafka_bootstrap": request.getfixturevalue("kafka_bootstrap"),
                "database_url": database_url,
                "topic": backends.unique("onevoice.fuzz"),
                "projector_group": backends.unique("projector"),
            }
        services = build(make_settings(data, **overrides))
        try:
            with LiveServer(services) as base_url:
                _seed(base_url)
                yield base_url
        finally:
            services.close()


def _database(request: pytest.FixtureRequest) -> Any:
    if request.param != "kafka":
        from contextlib import nullcontext

        return nullcontext("")
    return backends.fresh_database(request.getfixturevalue("pg_server"))


def _seed(base_url: str) -> None:
    import httpx

    events = [make_event("account.registered", account_id="0"),
              make_event("support.ticket_opened", account_id="0"),
              make_event("sales.meeting_held", account_id="hanbit-tech")]  # fmt: skip
    answer = httpx.post(f"{base_url}/v1/events/batch", json={"events": events}, headers=AUTH,
                        timeout=30)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text


def test_every_answer_stays_inside_the_documented_contract(live_api: str) -> None:
    """Every operation, ``EXAMPLES`` drawn requests each (the schema's own generation modes:
    valid and schema-breaking), every check of ``CHECKS``; the failures of all operations are
    reported together."""
    api = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz(operation)
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    assert operations >= 30, f"only {operations} operations in the description"
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any) -> None:
    """``EXAMPLES`` drawn requests of one operation, each answer checked (``CHECKS``)."""
    excluded = [negative_data_rejection] if operation.path == "/v1/events/batch" else []

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def answers_inside_the_contract(case: Any) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS, excluded_checks=excluded,
                               timeout=30)  # fmt: skip

    answers_inside_the_contract()


def test_the_description_documents_every_error_shape(tmp_path: Path) -> None:
    """The document itself: every operation's error answers point at the one error shape, the
    open paths need no key, and no FastAPI ``HTTPValidationError`` is left (the 422s answer the
    error shape)."""
    from services.api.auth import OPEN_PATHS

    services = build(make_settings(tmp_path / "data"))
    try:
        from services.bootstrap import build_app

        spec = build_app(services).openapi()
    finally:
        services.close()
    components = spec["components"]["schemas"]
    assert "HTTPValidationError" not in components and "ErrorBody" in components
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" in responses, (method, path)
            if path in OPEN_PATHS:
                assert operation["security"] == [], (method, path)
            else:
                assert {"401", "503"} <= set(responses), (method, path)
            for status, answer in responses.items():
                if status.startswith(("4", "5")) and path != "/readyz":
                    schema_ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert schema_ref.endswith("/ErrorBody"), (method, path, status)


def test_a_body_that_is_not_json_is_400_malformed_json_on_every_route_with_one(
    client: httpx.Client,
) -> None:
    """Ingest and the admin routes alike (the admin routes answered 422, or 400 ``http_400``
    for bytes that are not UTF-8, until the handlers mapped both to ingest's answer)."""
    spec = client.get("/openapi.json").json()
    with_body = [
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation or (method, path) == ("put", "/v1/kpi-targets")
    ]
    assert len(with_body) >= 8, with_body
    for method, path in with_body:
        url = path.replace("{rebuild_id}", "0" * 32)
        for body in (b'{"events": [', b"x\xff\xfe", b"not json"):
            answer = client.request(
                method.upper(), url, content=body, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 400, (method, path, body, answer.text)
            assert answer.json()["error"]["code"] == "malformed_json", (method, path, body)
