"""Every Kafka client logs in with the settings' SASL credentials (local broker, SASL listener)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.bootstrap import build_log, kafka_security
from services.core.adapters.kafka_log import KafkaLog
from services.core.ports import LogRecord, LogUnavailable, OutgoingRecord
from services.core.settings import Settings
from tests import backends
from tests.conftest import make_settings


def sasl_settings(bootstrap: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "log_backend": "kafka", "kafka_bootstrap": bootstrap,
        "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
        "kafka_sasl_username": backends.SASL_USERNAME,
        "kafka_sasl_password": backends.SASL_PASSWORD,
        "topic": backends.unique("sasl"), "projector_group": backends.unique("group"),
    }  # fmt: skip
    return make_settings(tmp_path / "data", **{**values, **overrides})


def test_append_consume_and_end_offsets_over_sasl(
    kafka_sasl_bootstrap: str, tmp_path: Path
) -> None:
    settings = sasl_settings(kafka_sasl_bootstrap, tmp_path)
    log = build_log(settings)  # creates the topic through the SASL listener
    try:
        positions = log.append(
            settings.topic, [OutgoingRecord(b"acct-1", b"one"), OutgoingRecord(b"acct-1", b"two")]
        )
        partition = positions[0][0]
        assert positions == [(partition, 0), (partition, 1)]
        assert log.end_offsets(settings.topic) == {
            p: 2 if p == partition else 0 for p in range(settings.partitions)
        }
        consumer = log.consumer(settings.topic, settings.projector_group, lambda parts: {})
        got: list[LogRecord] = []
        try:
            for _ in range(100):
                got.extend(consumer.poll(10, 0.2))
                if len(got) >= 2:
                    break
        finally:
            consumer.close()
        assert [(r.partition, r.offset, r.value) for r in got] == [
            (partition, 0, b"one"), (partition, 1, b"two")
        ]  # fmt: skip
    finally:
        log.close()


def test_a_wrong_password_is_unavailable_within_the_timeout(
    kafka_sasl_bootstrap: str, tmp_path: Path
) -> None:
    # The same listener accepts the right password (test above): only the login fails here.
    settings = sasl_settings(
        kafka_sasl_bootstrap, tmp_path, kafka_sasl_password="wrong", kafka_send_timeout_s=1
    )
    log = KafkaLog(kafka_sasl_bootstrap, send_timeout_s=1, security=kafka_security(settings))
    calls: dict[str, Callable[[], object]] = {
        "build_log": lambda: build_log(settings),
        "ensure_topic": lambda: log.ensure_topic(settings.topic, 2),
        "append": lambda: log.append(settings.topic, [OutgoingRecord(b"k", b"v")]),
        "end_offsets": lambda: log.end_offsets(settings.topic),
        "consumer": lambda: log.consumer(settings.topic, "g", lambda parts: {}),
    }
    try:
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(LogUnavailable):
                call()
            assert time.monotonic() - started < 5, name
    finally:
        log.close()
