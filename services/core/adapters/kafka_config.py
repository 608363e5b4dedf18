"""What the Kafka adapter asks of its clients, as plain data (no ``kafka`` import).

- ``client_config`` is the one place that builds the settings every client shares (brokers,
  identity, authentication, TLS); the adapter adds only per-client tuning on top.
"""

from __future__ import annotations

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
