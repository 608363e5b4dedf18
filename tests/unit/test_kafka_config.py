"""What the Kafka adapter hands its clients and demands of its topic (no broker: fake clients)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.core.adapters import kafka_log
from services.core.adapters.kafka_config import KafkaSecurity, topic_problems, topic_refusal
from services.core.adapters.kafka_log import KafkaLog
from services.core.ports import OutgoingRecord

CLIENT_CLASSES = ("KafkaAdminClient", "KafkaProducer", "KafkaConsumer")


class FakeClient:
    """Answers just enough of the admin, producer and consumer APIs for KafkaLog's calls."""

    def __init__(self, built: list[tuple[str, dict[str, Any]]], kind: str, **config: Any) -> None:
        built.append((kind, config))

    def create_topics(self, topics: list[Any], **_: Any) -> None:
        pass

    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [{"error_code": 0, "partitions": [{"partition": 0}]}]

    def send(self, topic: str, **_: Any) -> Any:
        return SimpleNamespace(get=lambda timeout: SimpleNamespace(partition=0, offset=0))

    def end_offsets(self, parts: list[Any], timeout_ms: int) -> dict[Any, int]:
        return dict.fromkeys(parts, 0)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def subscribe(self, topics: list[str], listener: Any) -> None:
        pass

    def close(self, **_: Any) -> None:
        pass


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every client KafkaLog constructs, as (class name, keyword arguments)."""
    made: list[tuple[str, dict[str, Any]]] = []
    for kind in CLIENT_CLASSES:
        monkeypatch.setattr(
            kafka_log, kind, lambda _kind=kind, **config: FakeClient(made, _kind, **config)
        )
    return made


def test_every_client_gets_the_security_settings(
    built: list[tuple[str, dict[str, Any]]],
) -> None:
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "svc", "s3cret", Path("/etc/ca.pem"))
    log = KafkaLog("b1:9093,b2:9093", send_timeout_s=2, security=security)
    log.ensure_topic("t", 1)
    log.append("t", [OutgoingRecord(b"k", b"v")])
    log.end_offsets("t")
    log.consumer("t", "projector", lambda parts: {}).close()
    log.close()

    assert [kind for kind, _ in built] == [
        "KafkaAdminClient", "KafkaProducer", "KafkaConsumer", "KafkaConsumer"
    ]  # fmt: skip
    shared = {
        "bootstrap_servers": "b1:9093,b2:9093",
        "bootstrap_timeout_ms": 2000,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/ca.pem",
    }
    for kind, config in built:
        assert config.items() >= shared.items(), kind
    assert [config["client_id"] for _, config in built] == [
        "onevoice-admin", "onevoice-producer", "onevoice-meta", "onevoice-projector"
    ]  # fmt: skip
    consumers = [config for kind, config in built if kind == "KafkaConsumer"]
    # The metadata client reads the high watermark (end_offsets); group members read committed.
    assert [c["isolation_level"] for c in consumers] == ["read_uncommitted", "read_committed"]
    assert "s3cret" not in repr(security)


def test_plaintext_clients_get_no_credentials(built: list[tuple[str, dict[str, Any]]]) -> None:
    log = KafkaLog("b:9092")
    log.ensure_topic("t", 1)
    log.close()
    [(_, config)] = built
    assert config["security_protocol"] == "PLAINTEXT"
    assert [config[k] for k in ("sasl_mechanism", "sasl_plain_password", "ssl_cafile")] == [
        None, None, None
    ]  # fmt: skip


def test_a_topic_that_keeps_everything_has_no_problems() -> None:
    found = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    assert topic_problems(found) == {}


def test_compaction_and_finite_or_unknown_retention_are_problems() -> None:
    found = {"cleanup.policy": "compact,delete", "retention.ms": "3600000", "retention.bytes": None}
    assert topic_problems(found) == {
        "cleanup.policy": "compact,delete", "retention.ms": "3600000", "retention.bytes": "None"
    }  # fmt: skip


def test_refusal_names_each_setting_its_value_and_the_fix() -> None:
    problems = {"cleanup.policy": "compact", "retention.bytes": "1048576"}
    message = topic_refusal("ev", problems, allow_finite_retention=False, bootstrap="k:9092")
    assert message is not None
    assert "topic 'ev'" in message
    assert "cleanup.policy=compact (compaction deletes older events" in message
    assert "retention.bytes=1048576 (" in message
    assert (
        "kafka-configs.sh --alter --entity-type topics --entity-name ev"
        " --add-config cleanup.policy=delete,retention.bytes=-1 --bootstrap-server k:9092"
    ) in message
    assert "does not allow compaction" in message


def test_allowing_finite_retention_never_allows_compaction() -> None:
    finite = topic_problems(
        {"cleanup.policy": "delete", "retention.ms": "60000", "retention.bytes": "-1"}
    )
    assert topic_refusal("ev", finite, allow_finite_retention=True, bootstrap="k") is None
    refused = topic_refusal("ev", finite, allow_finite_retention=False, bootstrap="k")
    assert refused is not None
    assert "retention.ms=60000 (events older than that are deleted)" in refused
    assert refused.endswith("set ONEVOICE_KAFKA_ALLOW_FINITE_RETENTION=true to run anyway (unsafe)")
    compacted = topic_problems(
        {"cleanup.policy": "compact", "retention.ms": "60000", "retention.bytes": "-1"}
    )
    message = topic_refusal("ev", compacted, allow_finite_retention=True, bootstrap="k")
    assert message is not None
    assert "--add-config cleanup.policy=delete --bootstrap-server k" in message
    assert "retention.ms" not in message
