"""Kafka security settings: complete combinations only, and the password never shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.bootstrap import kafka_security
from services.core.adapters.kafka_config import KafkaSecurity
from services.core.settings import Settings

SASL = {
    "kafka_sasl_mechanism": "SCRAM-SHA-256",
    "kafka_sasl_username": "onevoice",
    "kafka_sasl_password": "hunter2-secret",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``ONEVOICE_*`` variable of the outer environment reaches ``Settings()``."""
    for name in list(os.environ):
        if name.startswith("ONEVOICE_"):
            monkeypatch.delenv(name)


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    return str(info.value)


def test_plaintext_is_the_default_and_carries_no_credentials() -> None:
    assert kafka_security(Settings()) == KafkaSecurity()


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_protocols_need_mechanism_username_and_password(protocol: str) -> None:
    message = refusal(kafka_security_protocol=protocol)
    assert (
        f"ONEVOICE_KAFKA_SECURITY_PROTOCOL={protocol} needs ONEVOICE_KAFKA_SASL_MECHANISM,"
        " ONEVOICE_KAFKA_SASL_USERNAME, ONEVOICE_KAFKA_SASL_PASSWORD"
    ) in message
    only_password = refusal(kafka_security_protocol=protocol, **{**SASL, "kafka_sasl_password": ""})
    assert f"{protocol} needs ONEVOICE_KAFKA_SASL_PASSWORD [" in only_password


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_sasl_settings_without_a_sasl_protocol_are_refused(protocol: str) -> None:
    message = refusal(kafka_security_protocol=protocol, kafka_sasl_username="onevoice")
    assert "ONEVOICE_KAFKA_SASL_USERNAME set, but" in message
    assert "choose SASL_PLAINTEXT or SASL_SSL" in message


def test_unknown_mechanism_is_refused() -> None:
    message = refusal(
        kafka_security_protocol="SASL_SSL", **{**SASL, "kafka_sasl_mechanism": "GSSAPI"}
    )
    assert "kafka_sasl_mechanism" in message


def test_cafile_must_exist_and_needs_tls(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    assert f"ONEVOICE_KAFKA_SSL_CAFILE={missing}: no such file" in refusal(
        kafka_security_protocol="SSL", kafka_ssl_cafile=missing
    )
    cafile = tmp_path / "ca.pem"
    cafile.write_text("-----BEGIN CERTIFICATE-----\n")
    assert "does not use TLS: choose SSL or SASL_SSL" in refusal(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_ssl_cafile=cafile, **SASL
    )
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=cafile, **SASL)
    assert kafka_security(settings) == KafkaSecurity(
        "SASL_SSL", "SCRAM-SHA-256", "onevoice", "hunter2-secret", cafile
    )


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "ONEVOICE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ONEVOICE_KAFKA_SASL_MECHANISM": "PLAIN",
        "ONEVOICE_KAFKA_SASL_USERNAME": "svc",
        "ONEVOICE_KAFKA_SASL_PASSWORD": "from-env",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert kafka_security(Settings()) == KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "svc", "from-env")


def test_the_password_is_never_shown() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", **SASL)
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(kafka_security(settings)),
    ]
    # A refused combination must not echo the inputs (pydantic would print them all).
    shown.append(refusal(**SASL))
    shown.append(refusal(kafka_security_protocol="SASL_SSL", kafka_sasl_password="hunter2-secret"))
    assert not [text for text in shown if "hunter2" in text]
    assert kafka_security(settings).sasl_password == "hunter2-secret"


@pytest.mark.parametrize(("title", "executive"), [
    ("VP Sales", True), ("CTO", True), ("Chief Revenue Officer", True), ("대표이사", True),
    ("대표", True), ("영업본부장", True), ("Co-founder", True), ("Account Executive", False),
    ("영업대표", False), ("Chief of Staff", False), ("CIAO", False), ("Sales Director", False),
])  # fmt: skip
def test_the_default_executive_title_rule(title: str, executive: bool) -> None:
    rule = Settings().executive_title_rule
    assert rule is not None and bool(rule.search(title)) is executive


def test_departments_must_be_names_and_keep_the_type_owners() -> None:
    with pytest.raises(ValidationError, match="must include leadership"):
        Settings(departments="sales,marketing,support,success")
    with pytest.raises(ValidationError, match="not department names: Ops"):
        Settings(departments="sales,marketing,support,success,leadership,Ops")
    assert Settings(departments="sales, marketing,support,success,leadership,ops,ops")\
        .department_list[-1] == "ops"  # fmt: skip
    with pytest.raises(ValidationError, match="not a regular expression"):
        Settings(executive_titles="(")


def test_the_log_level_takes_any_case_and_names_a_wrong_one() -> None:
    assert Settings(log_level="info").log_level == "INFO"
    assert Settings(log_level=" Warning ").log_level == "WARNING"
    problem = refusal(log_level="verbose")
    assert "log_level" in problem and "unknown log level 'verbose'" in problem


def test_the_environment_of_the_settings_reproduces_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a worker process is started with: the same settings, secrets in clear, and none of
    the outer environment's ONEVOICE_* variables."""
    given = Settings(kafka_security_protocol="SASL_SSL", topic="t-1", partitions=7,
                     run_projector=False, **SASL)  # fmt: skip
    env = given.environment({"PATH": "/bin", "ONEVOICE_TOPIC": "other"})
    assert env["PATH"] == "/bin" and env["ONEVOICE_TOPIC"] == "t-1"
    assert env["ONEVOICE_KAFKA_SASL_PASSWORD"] == "hunter2-secret"
    assert env["ONEVOICE_RUN_PROJECTOR"] == "false"
    for name, value in env.items():
        if name.startswith("ONEVOICE_"):
            monkeypatch.setenv(name, value)
    assert Settings() == given
