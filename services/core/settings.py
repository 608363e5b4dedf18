"""All settings, read from ``ONEVOICE_*`` environment variables (documented in README.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.access import SECRET
from services.core.adapters.kafka_config import SaslMechanism, SecurityProtocol
from services.core.events import DEFAULT_DEPARTMENTS, DEPARTMENT_PATTERN, TYPE_DEPARTMENTS
from services.core.logs import LogFormat
from services.core.view_rules import Policy

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "WARN", "FATAL", "NOTSET")
"""The names Python's logging knows (the last three are its aliases and 'everything')."""
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_EXECUTIVE_TITLES = (
    r"\b(ceo|cfo|coo|cto|cmo|cro|cio|ciso|cso|cpo|cdo|chief \w+( \w+)? officer|president"
    r"|vice[ -]president|vp|svp|evp|founder|co-founder|managing director)\b"
    r"|대표이사|^대표$|사장|부사장|전무|상무|회장|본부장"
)


class Settings(BaseSettings):
    """One settings object for every service; every field is an ``ONEVOICE_<NAME>`` variable."""

    # hide_input_in_errors: a cross-field error would otherwise print every input, secrets too.
    model_config = SettingsConfigDict(
        env_prefix="ONEVOICE_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    data_dir: Path = Field(
        default=Path("data"), description="Folder for the embedded log and SQLite database."
    )
    log_backend: Literal["embedded", "kafka"] = Field(
        default="embedded", description="Event log: 'embedded' (file-backed) or 'kafka'."
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers (host:port,...)."
    )
    kafka_send_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Longest wait for Kafka to acknowledge a write."
    )
    kafka_replication_factor: int = Field(
        default=1, ge=1, le=10, description="Replication factor used when creating the topic."
    )
    kafka_session_timeout_s: float = Field(
        default=30.0, ge=6, le=300,
        description="How long the consumer group waits for a silent projector or replay worker"
        " (killed, frozen, cut off) before it gives that member's partitions to the others"
        " (session.timeout.ms; the broker's group.min/max.session.timeout.ms bound it).",
    )  # fmt: skip
    kafka_allow_finite_retention: bool = Field(
        default=False, description="Start even if the topic has finite retention (unsafe)."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="How clients reach Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); needed by SASL_*.",
    )
    kafka_sasl_username: str = Field(default="", description="SASL user; needed by SASL_*.")
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""), description="SASL password; needed by SASL_*; never logged."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL); "
        "unset = the system's trusted CAs.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the read-model database; empty = SQLite in data_dir.",
    )
    db_pool_size: int = Field(
        default=20, ge=1, le=200, description="PostgreSQL connections a process keeps open."
    )
    db_max_overflow: int = Field(
        default=20,
        ge=0,
        le=200,
        description="PostgreSQL connections a process may open beyond db_pool_size at a peak.",
    )
    topic: str = Field(default="onevoice.interactions", description="Topic of interaction events.")
    partitions: int = Field(
        default=12, ge=1, le=1000, description="Partition count used when creating the topic."
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server binds.")
    projector_port: int = Field(
        default=8001,
        ge=0,
        le=65535,
        description="Port of the projector's /healthz and /readyz (0 = any free port).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_batch: int = Field(default=500, ge=1, le=10_000, description="Most events in one batch.")
    max_future_s: int = Field(
        default=24 * 3600, ge=0, description="How far in the future occurred_at may be."
    )
    max_fanout: int = Field(
        default=1000,
        ge=1,
        description="Most view rows one event may make: contacts x (1 + related accounts).",
    )
    projector_batch: int = Field(
        default=1000, ge=1, le=100_000, description="Most events a projector applies per commit."
    )
    projector_batch_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        le=1024 * 1024 * 1024,
        description="Most bytes of record values a projector applies per commit (one event "
        "bigger than this is applied alone).",
    )
    projector_idle_s: float = Field(
        default=0.2, gt=0, le=10, description="How long an idle projector waits between polls."
    )
    health_refresh_s: float = Field(
        default=1.0, gt=0, le=3600,
        description="How long the health refresher waits when nothing was stale before it looks"
        " again (it keeps the accounts list's and coverage report's health cache ahead).",
    )  # fmt: skip
    kpi_history_weeks: int = Field(
        default=6, ge=0, le=106,
        description="How many past weeks' ends the refresher keeps every account's state at,"
        " so the KPI report reads them instead of evaluating every account per period.",
    )  # fmt: skip
    kpi_history_months: int = Field(
        default=3, ge=0, le=24,
        description="How many past months' ends the refresher keeps every account's state at"
        " (as ONEVOICE_KPI_HISTORY_WEEKS).",
    )  # fmt: skip
    stall_after_s: float = Field(
        default=60, gt=0, le=86_400,
        description="A read model with lag whose checkpoints have not moved for this long is"
        " reported as stalled (GET /v1/admin/projections, onevoice status).",
    )  # fmt: skip
    projector_group: str = Field(
        default="onevoice-projector", description="Consumer group of the projector processes."
    )
    run_projector: bool = Field(
        default=True, description="`run` also projects (embedded default): see projector_process."
    )
    projector_process: bool = Field(
        default=True,
        description="`run` projects in a child process of its own (its own GIL: the HTTP"
        " answers do not wait behind projector batches), started, supervised and stopped with"
        " it; false: in a thread of the API process.",
    )
    consistency_wait_s: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="Longest a read with X-Consistency-Token waits for its writes to be visible.",
    )
    business_time_zone: str = Field(
        default="UTC",
        description="IANA zone whose calendar days bound the view's 7/30/90-day windows "
        "(e.g. Asia/Seoul).",
    )
    at_risk_below: int = Field(
        default=60, ge=1, le=100, description="Health score below which an account is at risk."
    )
    handoff_days: int = Field(
        default=7, ge=1, le=90,
        description="Days (calendar days in the business time zone, today included) sales or"
        " success has to follow up a marketing signal before its handoff is stale.",
    )  # fmt: skip
    recurring_days: int = Field(
        default=90, ge=1, le=730,
        description="Window (calendar days, business time zone) in which two complaints of one"
        " category make it recurring, and in which a complaint after a recorded fix counts.",
    )  # fmt: skip
    renewal_days: int = Field(
        default=60, ge=1, le=730,
        description="A renewal due within this many days (from now) of an account nobody has"
        " touched in ONEVOICE_RENEWAL_QUIET_DAYS costs health (unattended_renewal).",
    )  # fmt: skip
    renewal_quiet_days: int = Field(
        default=30, ge=1, le=365,
        description="Window (calendar days, business time zone) in which an account with a"
        " renewal due must have been touched.",
    )  # fmt: skip
    silent_employee_weeks: int = Field(
        default=2, ge=1, le=52,
        description="Executives and account owners with no customer contact (no customer event"
        " they made or took part in) for this many weeks (7 days each) are flagged in the"
        " coverage report and their feed.",
    )  # fmt: skip
    week_start: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = Field(
        default="monday",
        description="First day of a report week (in the business time zone).",
    )
    value_currency: str = Field(
        default="KRW", pattern=r"^[A-Z]{3}$",
        description="Currency (ISO 4217) whose lifetime order value GET /v1/accounts?sort=value"
        " sorts by; other currencies are not converted.",
    )  # fmt: skip
    departments: str = Field(
        default=",".join(DEFAULT_DEPARTMENTS),
        description="Comma-separated departments whose people may appear in events (actor,"
        " participants, owners); must include sales, marketing, support, success and"
        " leadership, whose event types they own.",
    )
    executive_titles: str = Field(
        default=DEFAULT_EXECUTIVE_TITLES,
        description="Regular expression (case-insensitive, searched) marking a title as an"
        " executive's: ingest sets executive=true on the actor and participants whose title"
        " matches and who carry no executive flag. Empty = no title rule.",
    )
    auth: Literal["keys", "disabled"] = Field(
        default="keys",
        description="'keys': every request but /healthz, /readyz, /v1/schemas and the API's"
        " description needs 'Authorization: Bearer <key>' (README, Security); 'disabled':"
        " nobody needs one - for a sandbox only, warned about at every start.",
    )
    bootstrap_key: SecretStr = Field(
        default=SecretStr(""),
        description="The first key (every scope, named 'admin'), registered at a start that"
        " finds no key (e.g. from a Kubernetes secret); empty: that start makes one and writes"
        " it to <data_dir>/admin.key (mode 0600).",
    )
    api_key: SecretStr = Field(
        default=SecretStr(""),
        description="The key `onevoice demo` posts with; empty: the last line of"
        " <data_dir>/admin.key.",
    )
    write_rate: float = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="Events per second each key may write, per serving process, in bursts of"
        " up to ONEVOICE_MAX_BATCH (a key's own --write-rate overrides it); 0: no limit.",
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="Seconds a process remembers a key lookup: a revoked key stops working"
        " within this time; so does an erased contact's key, in processes other than the one"
        " that erased it. 0: no caching.",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins (https://crm.example.com) whose web pages may call"
        " the API from a browser (CORS); empty: none.",
    )
    log_level: str = Field(
        default="INFO",
        description="Python logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case;"
        " also WARN, FATAL, NOTSET).",
    )
    log_format: LogFormat | None = Field(
        default=None,
        description="Log lines as 'json' (one object per line) or 'text'; unset = text when "
        "the log stream (stderr) is a terminal, else json.",
    )

    @field_validator("departments")
    @classmethod
    def _departments_are_names(cls, value: str) -> str:
        names = [d.strip() for d in value.split(",") if d.strip()]
        bad = [d for d in names if not re.fullmatch(DEPARTMENT_PATTERN, d)]
        if bad:
            raise ValueError(
                f"not department names: {', '.join(bad)} (lower-case letters, digits and _,"
                " starting with a letter, at most 32 characters)"
            )
        missing = [d for d in TYPE_DEPARTMENTS if d not in names]
        if missing:
            raise ValueError(f"must include {', '.join(missing)} (they own event types)")
        return ",".join(dict.fromkeys(names))

    @field_validator("bootstrap_key")
    @classmethod
    def _bootstrap_key_is_strong(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()  # a secret file's newline is not part of it
        if secret and not SECRET.fullmatch(secret):
            raise ValueError("must be a key made by `onevoice keys secret` (ov_ and 256 random"
                             " bits, base64url)")  # fmt: skip
        return SecretStr(secret)

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_explicit(cls, value: str) -> str:
        origins = [o.strip() for o in value.split(",") if o.strip()]
        bad = [o for o in origins if o == "*" or not re.fullmatch(r"https?://[^/\s]+", o)]
        if bad:
            raise ValueError(f"not origins: {', '.join(bad)} (give scheme://host[:port] each;"
                             " '*' is not allowed)")  # fmt: skip
        return ",".join(origins)

    @field_validator("executive_titles")
    @classmethod
    def _titles_compile(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @field_validator("business_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Asia/Seoul"
            ) from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _cafile_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"ONEVOICE_KAFKA_SSL_CAFILE={value}: no such file")
        return value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        """SASL_* needs a mechanism and credentials; nothing is set that would go unused.

        Unused security settings are refused rather than ignored: they mean someone expected
        authentication or TLS that the chosen protocol would not give.
        """
        protocol = self.kafka_security_protocol
        sasl = {
            "ONEVOICE_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism is not None,
            "ONEVOICE_KAFKA_SASL_USERNAME": bool(self.kafka_sasl_username),
            "ONEVOICE_KAFKA_SASL_PASSWORD": bool(self.kafka_sasl_password.get_secret_value()),
        }
        if protocol.startswith("SASL_"):
            missing = [name for name, given in sasl.items() if not given]
            if missing:
                raise ValueError(
                    f"ONEVOICE_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}"
                )
        elif any(sasl.values()):
            given = [name for name, is_set in sasl.items() if is_set]
            raise ValueError(
                f"{', '.join(given)} set, but ONEVOICE_KAFKA_SECURITY_PROTOCOL={protocol} does not"
                " use SASL: choose SASL_PLAINTEXT or SASL_SSL, or unset them"
            )
        if self.kafka_ssl_cafile is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"ONEVOICE_KAFKA_SSL_CAFILE set, but ONEVOICE_KAFKA_SECURITY_PROTOCOL={protocol}"
                " does not use TLS: choose SSL or SASL_SSL, or unset it"
            )
        return self

    @property
    def department_list(self) -> tuple[str, ...]:
        """The configured departments, in the order given."""
        return tuple(self.departments.split(","))

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o for o in self.cors_origins.split(",") if o)

    @property
    def executive_title_rule(self) -> re.Pattern[str] | None:
        return re.compile(self.executive_titles, re.IGNORECASE) if self.executive_titles else None

    @property
    def policy(self) -> Policy:
        """The configurable parts of the view's rules."""
        return Policy(handoff_days=self.handoff_days, recurring_days=self.recurring_days,
                      renewal_days=self.renewal_days, renewal_quiet_days=self.renewal_quiet_days,
                      value_currency=self.value_currency,
                      silent_weeks=self.silent_employee_weeks,
                      executive_titles=self.executive_titles,
                      week_start=WEEKDAYS.index(self.week_start))  # fmt: skip

    @property
    def zone(self) -> ZoneInfo:
        """The business time zone."""
        return ZoneInfo(self.business_time_zone)

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) without its ``ONEVOICE_*`` variables,
        plus the ones that reproduce these settings in another process (a worker, a server)."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.startswith("ONEVOICE_")}  # fmt: skip
        for name, value in self.model_dump().items():
            if value is None:
                continue  # unset: the other process's default is None too
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"ONEVOICE_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env

    def resolved_database_url(self) -> str:
        """The read-model database URL; SQLite under ``data_dir`` unless set."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'onevoice.sqlite3').resolve()}"

    def embedded_log_path(self) -> Path:
        """Where the embedded log keeps its records."""
        return self.data_dir / "log.sqlite3"
