"""Typed, validated, frozen configuration.

Sources, strongest first: ``HOSTSTREAM_*`` environment variables, then the YAML
file given with ``--config``, then the defaults below. A wrong value fails at
start-up with a message that names the setting (see :func:`load_settings`).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hoststream.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]

ENV_PREFIX = "HOSTSTREAM_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the ``--config`` YAML file; keys are the setting names without the prefix."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """All of hoststream's settings. Environment: ``HOSTSTREAM_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", case_sensitive=False
    )

    #: Values read from the ``--config`` file; set by :func:`load_settings`.
    yaml_values: ClassVar[dict[str, Any]] = {}

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    topic_prefix: str = ""
    topic_partitions: int = Field(default=6, ge=1, le=10_000)
    topic_replication_factor: int = Field(default=1, ge=1, le=16)

    # Schema registry (unset: Avro single-object encoding, no registry)
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None

    # Stores
    vm_url: str = "http://127.0.0.1:8428"
    sql_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/hoststream")

    # Telemetry (unset: no export)
    otlp_endpoint: str | None = None
    #: Also send log records over OTLP to ``otlp_endpoint`` (the JSON lines stay as they are).
    otlp_logs: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    #: Port of this component's Prometheus ``/metrics`` on 127.0.0.1 (unset: not served).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Producer
    host_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=253)
    host_labels: dict[str, str] = Field(default_factory=dict)
    collect_interval_s: float = Field(default=10.0, gt=0, le=3600)
    producer_buffer_max_messages: int = Field(default=100_000, ge=100)
    # Collector filters, regular expressions. Unset: node_exporter 1.5's defaults
    # (pseudo filesystems, loop and ram devices left out); empty: leave out nothing.
    collect_mount_points_exclude: str | None = None
    collect_fs_types_exclude: str | None = None
    collect_disk_device_exclude: str | None = None
    collect_network_device_exclude: str | None = None

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    #: Signs and verifies the API's JWTs (HS256). Unset: ``<state_dir>/api-secret``
    #: if that file exists (``hoststream run`` creates it for development).
    api_secret: SecretStr | None = None
    #: YAML list of API keys, stored hashed (see ``hoststream token --api-key``).
    api_keys_file: Path | None = None
    #: Origins allowed to call the API from a browser (CORS); empty: none.
    api_cors_origins: list[str] = Field(default_factory=list)
    #: Requests per minute for each token, unless its key or JWT says otherwise.
    api_rate_limit_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    #: Failed authentications (401) one client address may make per minute, in
    #: bursts of as many; past that it is answered 429 with Retry-After.
    api_auth_failures_per_minute: int = Field(default=30, ge=1, le=1_000_000)

    # Alert routing
    alertmanager_url: str | None = None
    alert_routes_file: Path | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    opsgenie_api_key: SecretStr | None = None
    opsgenie_url: str = "https://api.opsgenie.com"

    # Local stack
    state_dir: Path = Path(".hoststream")
    lib_dir: Path | None = None  # default: <state_dir>/lib
    java_home: Path | None = None  # default: the first suitable JDK found
    #: Added to every port of the local stack, for a second stack on one machine.
    stack_port_offset: int = Field(default=0, ge=0, le=20000)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
        return value

    @field_validator(
        "collect_mount_points_exclude",
        "collect_fs_types_exclude",
        "collect_disk_device_exclude",
        "collect_network_device_exclude",
    )
    @classmethod
    def _is_regex(cls, value: str | None) -> str | None:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_legal(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("may hold only letters, digits, '.', '_' and '-'")
        return value

    def topic(self, name: str) -> str:
        """The full name of one of hoststream's topics, with the configured prefix."""
        return f"{self.topic_prefix}{name}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls, cls.yaml_values))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError("--config", f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError("--config", f"{path} is not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationError("--config", f"{path} must hold a mapping of settings")
    data = {str(k).lower().removeprefix("hoststream_"): v for k, v in raw.items()}
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigurationError(unknown[0], f"unknown setting in {path}")
    return data


def _unknown_env_settings() -> list[str]:
    known = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    return sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k.upper() not in known)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, raising :class:`ConfigurationError` naming the first bad setting.

    Args:
        config_file: optional YAML file; environment variables override its values.
        overrides: values that win over every source (command-line options).
    """
    yaml_data = _read_yaml(config_file) if config_file else {}
    # A typo in a variable name would otherwise be ignored silently.
    unknown_env = _unknown_env_settings()
    if unknown_env:
        raise ConfigurationError(unknown_env[0], "unknown setting")
    settings_cls = type("_LoadedSettings", (Settings,), {"yaml_values": yaml_data})
    try:
        loaded: Settings = settings_cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigurationError(f"{ENV_PREFIX}{name.upper()}", first["msg"]) from exc
    return loaded
