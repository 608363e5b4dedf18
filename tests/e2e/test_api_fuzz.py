"""Every operation of the API, fuzzed from its own description (``/openapi.json``), over HTTP.

Schemathesis draws requests for each operation from its documented parameters and bodies, in
both of its generation modes: valid requests, and requests that break the schema (wrong types,
out-of-range numbers, odd Unicode, huge or empty strings, missing or unknown fields). Every
answer must stay inside the contract:
- never a 5xx for what a client sent (``not_a_server_error``);
- only status codes the operation documents (``status_code_conformance``: ``api.openapi``
  documents the errors every operation can give, each route the ones only it gives);
- the documented media type and response headers, and bodies matching the documented schema,
  the one error shape included (``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``).
Each keyed operation must have answered something other than 401/403 (or the fuzz tested the
key, not the operation), and a request without a key gets 401 on every keyed operation (a test
of its own: schemathesis checks that only in a phase not run here).

Not checked: ``positive_data_acceptance`` (a schema cannot say what a valid cursor,
consistency token or configured department is, so schema-valid requests are refused by
design) and ``negative_data_rejection`` (a query parameter that takes one value and is sent
twice is read as its last value, as FastAPI does, where the check wants a 4xx; the batch answers
200 per item by design).

Both backends: on Kafka + PostgreSQL the drawn strings reach PostgreSQL, which refuses what
SQLite lets through (NUL, lone surrogates, over-long values). Draws are derandomized;
``ONEVOICE_TEST_FUZZ_EXAMPLES`` sets how many per operation and mode (default 15). The
operations that change the running app for the others (rebuilds, rollbacks, deletions) run
last, and the test key's own name is never drawn for a key deletion.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.auth import OPEN_PATHS
from services.bootstrap import build
from tests import backends
from tests.conftest import AUTH, BACKENDS, LiveServer, make_settings
from tests.samples import make_event

STARTS_WORK = frozenset({"POST /v1/admin/rebuilds", "POST /v1/admin/rollback",
                         "POST /v1/admin/rebuilds/{rebuild_id}/accept"})  # fmt: skip
"""Drawn only as schema-breaking requests: a valid one starts a rebuild in the background, and
on Kafka a later draw failed once and then passed on Hypothesis's replay (a final CI run)."""
EXAMPLES = int(os.environ.get("ONEVOICE_TEST_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]  # fmt: skip


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
        return nullcontext("")
    return backends.fresh_database(request.getfixturevalue("pg_server"))


def _seed(base_url: str) -> None:
    events = [make_event("account.registered", account_id="0"),
              make_event("support.ticket_opened", account_id="0"),
              make_event("sales.meeting_held", account_id="hanbit-tech")]  # fmt: skip
    answer = httpx.post(f"{base_url}/v1/events/batch", json={"events": events}, headers=AUTH,
                        timeout=30)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text


def test_every_answer_stays_inside_the_documented_contract(live_api: str) -> None:
    """Every operation, ``EXAMPLES`` drawn requests in each generation mode (valid, and
    breaking the schema), every check of ``CHECKS``; the failures of all operations are
    reported together. Each keyed operation must also have answered something other than
    401/403 (else the fuzz tested the key, not the operation), and the test's key must still
    work at the end."""
    api = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    failures: list[str] = []
    seen: dict[str, set[int]] = {}
    operations = [result.ok() for result in api.get_all_operations()]
    # Last: what changes the running app for the others (rebuilds, rollbacks, revoked keys).
    operations.sort(
        key=lambda op: (
            "rebuild" in op.path or "rollback" in op.path or op.method.upper() == "DELETE",
            op.path,
            op.method,
        )
    )
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        statuses = seen.setdefault(label, set())
        for mode in GenerationMode:
            if mode is GenerationMode.POSITIVE and label in STARTS_WORK:
                continue  # test_rebuild_admin_http starts them; here they slowed the rest
            try:
                _fuzz(operation, mode, statuses)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, label  # nothing to break: no inputs
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis: a FailureGroup
                failures.append(f"{label} ({mode.value}): {exc}"[:3000])
    assert len(operations) >= 30, f"only {len(operations)} operations in the description"
    assert not failures, "\n\n".join(failures)
    keyed = {label: s for label, s in seen.items() if label.split(" ", 1)[1] not in OPEN_PATHS}
    only_refused = sorted(label for label, s in keyed.items() if s <= {401, 403})
    assert not only_refused, f"answered only 401/403: {only_refused}"
    still = httpx.get(f"{live_api}/v1/admin/keys", headers=AUTH, timeout=30)
    assert still.status_code == 200, still.text


def test_every_keyed_operation_refuses_a_request_without_a_key(live_api: str) -> None:
    spec = httpx.get(f"{live_api}/openapi.json", timeout=30).json()
    keyed = [(method, path) for path, operations in spec["paths"].items()
             for method in operations if path not in OPEN_PATHS]  # fmt: skip
    assert len(keyed) >= 30
    for method, path in keyed:
        url = live_api + re.sub(r"\{[^}]+\}", "0" * 32, path)
        answer = httpx.request(method.upper(), url, timeout=30)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthenticated", (method, path)


def _fuzz(operation: Any, mode: GenerationMode, statuses: set[int]) -> None:
    """``EXAMPLES`` drawn requests of one operation in one mode, each answer checked
    (``CHECKS``); the statuses answered go to ``statuses``."""
    pinned = {"name": "fuzz-no-such-key"} if operation.path == "/v1/admin/keys/{name}" else None
    if mode is GenerationMode.NEGATIVE:
        pinned = None  # a schema-breaking name cannot be the test key's

    @given(case=operation.as_strategy(mode, path_parameters=pinned))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def answers_inside_the_contract(case: Any) -> None:
        response = case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=30)
        statuses.add(response.status_code)

    answers_inside_the_contract()


def test_the_description_documents_every_error_shape(tmp_path: Path) -> None:
    """The document itself: every operation's error answers point at the one error shape, the
    open paths need no key, and no FastAPI ``HTTPValidationError`` is left (the 422s answer the
    error shape)."""
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
                if path == "/readyz":
                    assert "503" in responses  # not ready: the readiness body, not an error
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
        url = path
        for body in (b'{"events": [', b"x\xff\xfe", b"not json"):
            answer = client.request(
                method.upper(), url, content=body, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 400, (method, path, body, answer.text)
            assert answer.json()["error"]["code"] == "malformed_json", (method, path, body)


def test_a_body_over_the_limit_sent_without_its_length_is_413_on_every_route_with_one(
    client: httpx.Client,
) -> None:
    """Chunked, so no ``Content-Length`` for ``BodyLimit`` to refuse up front: it stops the
    read instead. The admin routes answered 400 (FastAPI wraps what stops a body read in its
    own 400) until ``_http_error`` answered it as the limit's 413."""
    spec = client.get("/openapi.json").json()
    with_body = [
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert len(with_body) >= 8, with_body
    limit = 1_048_576  # make_settings leaves ONEVOICE_MAX_BODY_BYTES at its default

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65_536 + 2):
            yield b" " * 65_536

    for method, path in with_body:
        answer = client.request(
            method.upper(), path, content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 413, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "body_too_large", (method, path)
