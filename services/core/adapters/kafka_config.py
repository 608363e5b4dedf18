"""What the Kafka adapter asks of its clients and of its topic, as plain data (no ``kafka`` import).

- ``client_config`` is the one place that builds the settings every client shares (brokers,
  identity, authentication, TLS); the adapter adds only per-client tuning on top.
- ``topic_refusal`` decides whether an existing topic keeps every event: compaction is always
  refused, finite retention only unless explicitly allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How clients authenticate and encrypt. The password never appears in ``repr``.

    ``sasl_*`` are used only by the ``SASL_*`` protocols and ``ssl_cafile`` only by ``SSL`` and
    ``SASL_SSL`` (``Settings`` refuses other combinations); without a CA file TLS verifies the
    brokers against the system's trusted CAs.
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None


PLAINTEXT: Final = KafkaSecurity()


def client_config(
    bootstrap: str, client_id: str, security: KafkaSecurity, timeout_s: float
) -> dict[str, Any]:
    """kafka-python keyword arguments shared by every client (admin, producer, consumers).

    ``timeout_s`` bounds how long a client waits to reach a broker at all: a wrong address or a
    rejected login fails within it instead of hanging. The security keys are always present
    (``None`` when unused), so no client can be built without them.
    """
    return {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "bootstrap_timeout_ms": int(timeout_s * 1000),
        "security_protocol": security.protocol,
        "sasl_mechanism": security.sasl_mechanism,
        "sasl_plain_username": security.sasl_username,
        "sasl_plain_password": security.sasl_password,
        "ssl_cafile": None if security.ssl_cafile is None else str(security.ssl_cafile),
    }


# The topic is the source of truth: nothing may ever delete an event from it.
REQUIRED_TOPIC_CONFIG: Final = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
}
_WHY = {
    "cleanup.policy": "compaction deletes older events of the same key, that is of the account",
    "retention.ms": "events older than that are deleted",
    "retention.bytes": "a partition's oldest events are deleted beyond that size",
}


def _finite(value: str | None) -> bool:
    try:
        return value is None or int(value) >= 0
    except ValueError:
        return True  # unreadable: cannot show that nothing is deleted


def topic_problems(found: Mapping[str, str | None]) -> dict[str, str]:
    """The settings of ``found`` (a topic's effective config) that lose events, with values.

    ``cleanup.policy`` is a problem when it includes ``compact``; ``retention.ms`` and
    ``retention.bytes`` when finite (or missing: the broker did not show they are infinite).
    """
    problems = {}
    policy = found.get("cleanup.policy") or ""
    if "compact" in (part.strip() for part in policy.split(",")):
        problems["cleanup.policy"] = policy
    for key in ("retention.ms", "retention.bytes"):
        if _finite(found.get(key)):
            problems[key] = str(found.get(key))
    return problems


def topic_refusal(
    topic: str, problems: Mapping[str, str], *, allow_finite_retention: bool, bootstrap: str
) -> str | None:
    """Why the topic must not be used (naming each setting, its value and the fix), or None.

    Compaction is always refused; finite retention only when ``allow_finite_retention`` is off.
    """
    refused = {
        key: value
        for key, value in problems.items()
        if key == "cleanup.policy" or not allow_finite_retention
    }
    if not refused:
        return None
    found = "; ".join(f"{key}={value} ({_WHY[key]})" for key, value in refused.items())
    fix = ",".join(f"{key}={REQUIRED_TOPIC_CONFIG[key]}" for key in refused)
    message = (
        f"topic {topic!r} is the source of truth but would lose events: {found}. Fix it with:"
        f" kafka-configs.sh --alter --entity-type topics --entity-name {topic}"
        f" --add-config {fix} --bootstrap-server {bootstrap}"
    )
    if "cleanup.policy" in refused:
        return message + " (ONEVOICE_KAFKA_ALLOW_FINITE_RETENTION does not allow compaction)"
    return message + ", or set ONEVOICE_KAFKA_ALLOW_FINITE_RETENTION=true to run anyway (unsafe)"
