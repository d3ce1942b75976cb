"""Typed, validated, frozen configuration, declared in sections.

Sources, strongest first: ``HOSTSTREAM_*`` environment variables, then the YAML
file given with ``--config``, then the defaults below. A wrong value fails at
start-up with a message that names the setting (see :func:`load_settings`).

Each section (:class:`KafkaSection`, :class:`ProducerSection`,
:class:`StreamsSection`, ...) declares its settings with their types, limits
and documentation; :class:`Settings` is all of them at once, so a setting is
read as ``settings.<name>`` and set as ``HOSTSTREAM_<NAME>`` or ``<name>:`` in
the YAML file. A function that needs one section only can take that section's
type, and any :class:`Settings` will do. :func:`settings_table` lists every
setting by section, for the docs.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hoststream.env_names import ENV_PREFIX, FILE_SUFFIX
from hoststream.errors import ConfigurationError
from hoststream.ports import API_PORT
from hoststream.topics import prefixed

__all__ = [
    "SECTIONS",
    "AlertingSection",
    "ApiSection",
    "KafkaSection",
    "LocalStackSection",
    "ProducerSection",
    "SchemaRegistrySection",
    "SecuritySection",
    "SettingInfo",
    "Settings",
    "StoresSection",
    "StreamsSection",
    "TelemetrySection",
    "ValidationSection",
    "load_settings",
    "secret_settings",
    "settings_table",
]


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
#: A port a component listens on; 0 asks the system for a free one (the component logs it).
ListenPort = Annotated[int, Field(ge=0, le=65535)]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: A list given as ``a,b,c`` in a variable, or as a YAML list.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]


class _Section(BaseModel):
    """One group of settings; :class:`Settings` inherits every section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The section's heading in :func:`settings_table` and the docs.
    title: ClassVar[str] = ""


class KafkaSection(_Section):
    """How every component reaches Kafka, and how hoststream's topics are made."""

    title: ClassVar[str] = "Kafka"

    region: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="This component's region, named after its Kafka cluster (e.g. `region-a`): "
        "every event, aggregate and alert it makes carries it; unset: none.",
    )
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Brokers to bootstrap from, host:port[,host:port...]."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (SASL only)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_ca_location: Path | None = Field(None, description="CA certificate file (TLS).")
    kafka_ssl_certificate_location: Path | None = Field(
        None, description="Client certificate file (TLS client authentication)."
    )
    kafka_ssl_key_location: Path | None = Field(None, description="Client key file.")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="Client key password.")
    topic_prefix: str = Field(
        "", description="Put before every topic and consumer group name, e.g. `prod.`."
    )
    topic_partitions: int = Field(
        6, ge=1, le=10_000, description="Partitions of the topics hoststream creates."
    )
    topic_replication_factor: int = Field(
        1, ge=1, le=16, description="Replication factor of the topics hoststream creates."
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
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
        return prefixed(self, name)


class SchemaRegistrySection(_Section):
    """The schema registry; unset: Avro single-object encoding, no registry."""

    title: ClassVar[str] = "Schema registry"

    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible registry URL; unset: no registry."
    )
    schema_registry_username: str | None = Field(None, description="Registry user name.")
    schema_registry_password: SecretStr | None = Field(None, description="Registry password.")


class StoresSection(_Section):
    """Where the sinks write and the API reads."""

    title: ClassVar[str] = "Stores"

    vm_url: str = Field("http://127.0.0.1:8428", description="VictoriaMetrics base URL.")
    vm_write_format: Literal["remote_write", "import"] = Field(
        "remote_write",
        description=(
            "How the VictoriaMetrics sink writes: `remote_write` (Prometheus remote write,"
            " `/api/v1/write`, snappy) or `import` (JSON lines, `/api/v1/import`)."
        ),
    )
    sql_dsn: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/hoststream"),
        description="CockroachDB/PostgreSQL connection string.",
    )


class TelemetrySection(_Section):
    """Logs, traces and each component's Prometheus ``/metrics``."""

    title: ClassVar[str] = "Telemetry"

    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP endpoint for traces; unset: no export."
    )
    otlp_logs: bool = Field(
        False, description="Also send log records over OTLP to the endpoint above."
    )
    otlp_logs_endpoint: str | None = Field(
        None,
        description="Full OTLP/HTTP logs URL of a log store (e.g. VictoriaLogs'"
        " `/insert/opentelemetry/v1/logs`); set: log records go there, batched,"
        " whatever HOSTSTREAM_OTLP_LOGS says.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["json", "console"] = Field(
        "console", description="`console` (text) or `json` (one object per line, for Loki)."
    )
    metrics_port: ListenPort | None = Field(
        None,
        description="Port of the component's `/metrics`; 0: any free port "
        "(logged); unset: not served. `hoststream run` sets it per component.",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address `/metrics` listens on; `0.0.0.0` in a container, "
        "so the orchestrator's probes and scrapers reach it.",
    )


class ProducerSection(_Section):
    """The agent on every host (``hoststream produce``)."""

    title: ClassVar[str] = "Producer"

    host_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=253,
        description="This host's name in every event; default: the hostname.",
    )
    host_labels: dict[str, str] = Field(
        default_factory=dict, description='Static labels of this host, JSON: `{"role": "db"}`.'
    )
    collect_interval_s: float = Field(
        10.0, gt=0, le=3600, description="Seconds between collections (`--interval`)."
    )
    producer_buffer_max_messages: int = Field(
        100_000, ge=100, description="Events kept while Kafka is away; beyond: dropped, counted."
    )
    # Collector filters, regular expressions. Unset: node_exporter 1.5's defaults
    # (pseudo filesystems, loop and ram devices left out); empty: leave out nothing.
    collect_mount_points_exclude: str | None = Field(
        None, description="Regex of mount points left out; unset: node_exporter's default."
    )
    collect_fs_types_exclude: str | None = Field(
        None, description="Regex of filesystem types left out; unset: node_exporter's default."
    )
    collect_disk_device_exclude: str | None = Field(
        None, description="Regex of disk devices left out; unset: node_exporter's default."
    )
    collect_network_device_exclude: str | None = Field(
        None, description="Regex of network devices left out; unset: none."
    )
    collect_process_states: bool = Field(
        False,
        description="Send `node_processes_state` (a walk of every process, as node_exporter's "
        "processes collector); off by default, as there.",
    )

    simulate_hosts: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Produce for this many simulated hosts instead of this one "
        "(`--simulate-hosts`); 0: this host.",
    )
    simulate_seed: int = Field(1, description="Seed of the simulated fleet (`--seed`).")
    simulate_speedup: float = Field(
        1.0,
        gt=0,
        le=10_000,
        description="Simulated time runs this many times faster (`--speedup`).",
    )
    simulate_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes that share the simulated hosts, each with its own Kafka "
        "producer (`--processes`); the fleet's output is the same whatever their number.",
    )

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


class StreamsSection(_Section):
    """The stream processor (``hoststream stream``); most have a command-line option too."""

    title: ClassVar[str] = "Stream processor"

    stream_app_id: str | None = Field(
        None,
        description="Faust app id and consumer group (`--app-id`); "
        "default `<topic prefix>hoststream-streams`.",
    )
    stream_windows: CommaList = Field(
        ("1m", "5m"), description="Window sizes, e.g. `10s,1m,5m` (`--windows`)."
    )
    stream_grace_s: float = Field(
        10.0, ge=0, le=3600, description="Seconds a late sample still counts (`--grace`)."
    )
    stream_families: CommaList = Field(
        (),
        description="Metric families to read, one `metrics.<family>` topic each; "
        "unset: every family.",
    )
    stream_batch_size: int = Field(
        5000, ge=1, le=1_000_000, description="At most this many messages a batch (`--batch-size`)."
    )
    stream_batch_within_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="A batch is processed at most this long after its first message; "
        "sooner once delivery pauses (`--batch-within`).",
    )
    stream_commit_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often the worker commits the offsets it has processed and stored; "
        "after a crash it redoes at most about this much work.",
    )
    stream_tick_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="How often every state is checked on wall time (nodata alerts, expiry); "
        "windows close on wall time when due, between these checks too.",
    )
    stream_max_future_s: float | None = Field(
        None,
        ge=0,
        description="Events stamped further ahead of the clock are dead-lettered "
        "(`--max-future`); unset: HOSTSTREAM_VALIDATION_MAX_FUTURE_S.",
    )
    stream_session_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds before a silent worker's partitions move (`--session-timeout`).",
    )
    stream_lag_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often the consumer-lag gauge is refreshed."
    )
    stream_exact_quantile_samples: int = Field(
        64,
        ge=1,
        le=1_000_000,
        description="A window of a series holding up to this many samples has exact quantiles; "
        "one holding more, quantiles from a sketch.",
    )
    stream_relative_accuracy: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="The sketch's bound: each quantile of a window beyond the exact limit lies "
        "within this fraction of the exact one.",
    )
    stream_rules_file: Path | None = Field(
        None, description="Alert rules YAML (`--rules`); unset: the built-in host rules."
    )
    stream_alerts: bool = Field(
        True, description="Evaluate alert rules; false: aggregates only (`--no-alerts`)."
    )

    @field_validator("stream_windows")
    @classmethod
    def _windows_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Imported here: the streams package imports this module.
        from hoststream.streams.windows import parse_windows

        try:
            return tuple(size.label for size in parse_windows(value, "stream_windows"))
        except ConfigurationError as exc:
            raise ValueError(exc.problem) from exc

    @field_validator("stream_families")
    @classmethod
    def _families_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from hoststream.schemas.records import FAMILIES

        if set(value) - set(FAMILIES):
            raise ValueError(f"expected some of {', '.join(FAMILIES)}")
        return value


class ValidationSection(_Section):
    """The validation contract's limits, the same at every hop (docs/validation.md)."""

    title: ClassVar[str] = "Validation"

    validation_max_host_id_length: int = Field(
        253, ge=1, le=4096, description="Characters of a host id (253: the longest DNS name)."
    )
    validation_max_metric_name_length: int = Field(
        200, ge=1, le=4096, description="Characters of a metric name."
    )
    validation_max_label_name_length: int = Field(
        100, ge=1, le=4096, description="Characters of a label name."
    )
    validation_max_label_value_length: int = Field(
        1024,
        ge=1,
        le=16384,
        description="Characters of a label value (VictoriaMetrics truncates past its "
        "-maxLabelValueLen, 16384, silently).",
    )
    validation_max_labels_per_series: int = Field(
        30,
        ge=4,
        le=1000,
        description="Labels of a stored series, counting __name__, instance and job "
        "(VictoriaMetrics' -maxLabelsPerTimeseries drops the rest silently).",
    )
    validation_max_age_s: float = Field(
        7 * 86_400.0,
        gt=0,
        description="How far behind the consumer's clock a timestamp may be; keep it within "
        "the stores' retention.",
    )
    validation_max_future_s: float = Field(
        600.0, ge=0, description="How far ahead of the consumer's clock a timestamp may be."
    )


class ApiSection(_Section):
    """The query API (``hoststream api``)."""

    title: ClassVar[str] = "API"

    api_host: str = Field("127.0.0.1", description="Address the API listens on (`--host`).")
    api_port: ListenPort = Field(
        API_PORT,
        description=f"Port (`--port`); default {API_PORT} + `HOSTSTREAM_STACK_PORT_OFFSET`; "
        "0: any free port (logged).",
    )
    #: Unset: ``<state_dir>/api-secret`` if that file exists (``hoststream run`` creates it).
    api_secret: SecretStr | None = Field(
        None,
        description="Signs and verifies the API's JWTs (HS256); "
        "unset: `<state dir>/api-secret` if it exists.",
    )
    api_keys_file: Path | None = Field(
        None, description="YAML list of hashed API keys (`hoststream token --api-key`)."
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (JSON)."
    )
    api_rate_limit_per_minute: int = Field(
        600, ge=1, le=1_000_000, description="Requests a minute per token, unless it says more."
    )
    api_auth_failures_per_minute: int = Field(
        30,
        ge=1,
        le=1_000_000,
        description="Failed authentications (401) one client address may make a minute, in "
        "bursts of as many; past that it is answered 429 with Retry-After.",
    )


class AlertingSection(_Section):
    """Where ``hoststream sink alerts`` sends alerts."""

    title: ClassVar[str] = "Alerting"

    alertmanager_url: str | None = Field(None, description="Alertmanager base URL (API v2).")
    alert_routes_file: Path | None = Field(
        None, description="Routing YAML (`--routes`); unset: the built-in routes."
    )
    pagerduty_routing_key: SecretStr | None = Field(
        None, description="PagerDuty Events API v2 routing key."
    )
    pagerduty_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API URL."
    )
    opsgenie_api_key: SecretStr | None = Field(None, description="Opsgenie API key.")
    opsgenie_url: str = Field("https://api.opsgenie.com", description="Opsgenie API base URL.")


class SecuritySection(_Section):
    """TLS of the HTTP services and certificate checks (Kafka's own are in its section)."""

    title: ClassVar[str] = "Security"

    tls_ca_file: Path | None = Field(
        None,
        description="CA certificate that signs the HTTPS services' certificates "
        "(VictoriaMetrics, the schema registry, the API); unset: the system's.",
    )
    api_tls_cert_file: Path | None = Field(
        None, description="Certificate of the API; set with the key, the API serves HTTPS."
    )
    api_tls_key_file: Path | None = Field(None, description="Private key of the API.")
    vm_username: str | None = Field(None, description="VictoriaMetrics basic-auth user name.")
    vm_password: SecretStr | None = Field(None, description="VictoriaMetrics basic-auth password.")
    certificate_warning_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="A certificate that expires within this many days is logged as a warning.",
    )
    certificate_check_interval_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How often certificate files are checked for expiry and rotation.",
    )


class LocalStackSection(_Section):
    """The local services of ``hoststream stack`` and ``hoststream run``."""

    title: ClassVar[str] = "Local stack"

    state_dir: Path = Field(
        Path(".hoststream"), description="Data, logs and pid files of the local stack."
    )
    lib_dir: Path | None = Field(
        None, description="Kafka and registry jars; default `<state dir>/lib`."
    )
    java_home: Path | None = Field(None, description="JDK to run them; default: the first found.")
    stack_port_offset: int = Field(
        0,
        ge=0,
        le=20000,
        description="Added to every port of the stack and of the components, for a second "
        "stack on one machine.",
    )


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the ``--config`` YAML file; keys are the setting names without the prefix."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


def secret_settings() -> list[str]:
    """The names of the settings that hold secrets (``SecretStr``), each of which may be a file."""
    return [
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in repr(field.annotation)
    ]


def _read_secret_file(setting: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot read {path}: {exc.strerror}") from exc
    # Secret files usually end with one newline that is not part of the secret.
    return text.rstrip("\r\n")


class _SecretFileSource(PydanticBaseSettingsSource):
    """Secret settings read from the file ``HOSTSTREAM_<NAME>_FILE`` (or ``<name>_file:``) names."""

    def __init__(self, settings_cls: type[BaseSettings], yaml_data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._yaml = yaml_data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
        values: dict[str, Any] = {}
        for name in secret_settings():
            variable = f"{ENV_PREFIX}{name.upper()}"
            path = environ.get(variable + FILE_SUFFIX)
            if path is not None and variable in environ:
                raise ConfigurationError(
                    variable + FILE_SUFFIX, f"set either {variable} or {variable}{FILE_SUFFIX}"
                )
            if path is None and name not in self._yaml:
                path = self._yaml.get(f"{name}_file")
            if path is not None:
                values[name] = _read_secret_file(variable + FILE_SUFFIX, str(path))
        return values


# The sections' order here is the docs' order (SECTIONS).
class Settings(
    KafkaSection,
    SchemaRegistrySection,
    StoresSection,
    TelemetrySection,
    ProducerSection,
    StreamsSection,
    ValidationSection,
    ApiSection,
    AlertingSection,
    SecuritySection,
    LocalStackSection,
    BaseSettings,
):
    """All of hoststream's settings, every section at once. Environment: ``HOSTSTREAM_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", case_sensitive=False
    )

    #: Values read from the ``--config`` file; set by :func:`load_settings`.
    yaml_values: ClassVar[dict[str, Any]] = {}

    def model_post_init(self, context: Any, /) -> None:
        # The API's default port moves with the stack's offset, as every port
        # of the stack does, so a second checkout's pipeline can run beside the first.
        if "api_port" not in self.model_fields_set and self.stack_port_offset:
            object.__setattr__(self, "api_port", API_PORT + self.stack_port_offset)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _SecretFileSource(settings_cls, cls.yaml_values),
            _YamlSource(settings_cls, cls.yaml_values),
        )


#: The sections, in the order the docs list them: that of Settings' bases.
SECTIONS: tuple[type[_Section], ...] = tuple(
    base for base in Settings.__bases__ if issubclass(base, _Section)
)


@dataclass(frozen=True)
class SettingInfo:
    """One setting as the docs show it."""

    section: str
    name: str
    env: str
    default: str
    description: str


def settings_table() -> list[SettingInfo]:
    """Every setting, section by section, with its variable, default and description."""
    rows: list[SettingInfo] = []
    for section in SECTIONS:
        for name, field in section.model_fields.items():
            if field.default_factory is not None:
                default = "(computed)"
            elif field.default is None or field.default == ():
                default = "unset"
            elif isinstance(field.default, tuple):
                default = ",".join(field.default)
            elif isinstance(field.default, SecretStr):
                default = "(secret)"
            else:
                default = str(field.default)
            rows.append(
                SettingInfo(
                    section.title,
                    name,
                    f"{ENV_PREFIX}{name.upper()}",
                    default,
                    field.description or "",
                )
            )
    return rows


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
    known = set(Settings.model_fields) | {f"{name}_file" for name in secret_settings()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(unknown[0], f"unknown setting in {path}")
    return data


def _unknown_env_settings() -> list[str]:
    known = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    known |= {f"{ENV_PREFIX}{name}{FILE_SUFFIX}".upper() for name in secret_settings()}
    return sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k.upper() not in known)


def setting_error(exc: ValidationError) -> ConfigurationError:
    """The first problem of a failed validation, naming its ``HOSTSTREAM_*`` setting."""
    first = exc.errors()[0]
    name = ".".join(str(p) for p in first["loc"][:1]) or "settings"
    return ConfigurationError(f"{ENV_PREFIX}{name.upper()}", first["msg"])


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, raising :class:`ConfigurationError` naming the first bad setting.

    Args:
        config_file: optional YAML file; environment variables override its values.
        overrides: values that win over every source (command-line options);
            None means "not given".
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
        raise setting_error(exc) from exc
    return loaded
