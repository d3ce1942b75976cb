"""This host's agent in a process image of its own: the settings handed over, not re-read.

``hoststream produce`` reads and validates its settings like every command
(the command line, the YAML file, ``HOSTSTREAM_*`` variables, secret files,
through pydantic). The agent then runs for months beside the host's own
work, where its resident memory counts: pydantic, typer and their imports are
about half of it. So, once the settings are valid, :func:`hand_over` replaces
the process (``exec``, the same pid, signals and exit status) with
``python -m hoststream.producers.handover``, and writes the validated values
to it through a pipe (not the environment: they may hold secrets). The new
image builds a :class:`SettingsSnapshot` from them and runs the agent, which
never imports :mod:`hoststream.config`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, cast

if TYPE_CHECKING:
    from hoststream.config import Settings

__all__ = ["Secret", "SettingsSnapshot", "hand_over", "snapshot_of"]


class Secret:
    """A secret setting's value: shown as stars, read with :meth:`get_secret_value`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


class SettingsSnapshot:
    """Validated settings as plain attributes: what the agent reads of :class:`Settings`.

    Args:
        values: every setting by name, as :func:`snapshot_of` encodes them.
        yaml_values: what the ``--config`` file held (the Kafka password
            file's watch asks where the password came from).
    """

    def __init__(self, values: dict[str, Any], yaml_values: dict[str, Any]) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "yaml_values", yaml_values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settings are frozen: cannot set {name}")

    def __repr__(self) -> str:
        return f"SettingsSnapshot({len(vars(self)) - 1} settings)"


def snapshot_of(settings: Settings) -> str:
    """``settings`` as JSON: each value tagged with the type to rebuild it as.

    Raises:
        TypeError: a setting of a type the snapshot does not carry.
    """
    from pydantic import SecretStr

    values: dict[str, list[Any]] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values[name] = ["secret", value.get_secret_value()]
        elif isinstance(value, Path):
            values[name] = ["path", str(value)]
        elif isinstance(value, tuple):
            values[name] = ["tuple", list(value)]
        elif value is None or isinstance(value, str | bool | int | float | dict | list):
            values[name] = ["value", value]
        else:
            raise TypeError(f"setting {name} is a {type(value).__name__}, which is not handed over")
    return json.dumps({"settings": values, "yaml": type(settings).yaml_values}, default=str)


def from_snapshot(text: str) -> SettingsSnapshot:
    """The :class:`SettingsSnapshot` of :func:`snapshot_of`'s JSON."""
    data = json.loads(text)
    build: dict[str, Callable[[Any], Any]] = {
        "secret": Secret,
        "path": Path,
        "tuple": tuple,
        "value": lambda value: value,
    }
    values = {name: build[kind](value) for name, (kind, value) in data["settings"].items()}
    return SettingsSnapshot(values, data["yaml"])


def hand_over(settings: Settings, duration_s: float | None) -> None:
    """Replace this process with the agent, handing it ``settings``; return only if it cannot.

    Returns (and the caller runs the agent here) when the settings hold a value
    the snapshot does not carry.
    """
    try:
        payload = snapshot_of(settings).encode()
    except TypeError:
        return
    read_end, write_end = os.pipe()
    if len(payload) > 60_000:  # beyond a pipe's buffer the write would wait for a reader
        os.close(read_end)
        os.close(write_end)
        return
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-m", "hoststream.producers.handover", str(read_end)]
    if duration_s is not None:
        args.append(repr(duration_s))
    # librdkafka's threads would each get a glibc malloc arena of their own,
    # which fragment and hold memory over months; two suffice for the agent.
    # Fixed thresholds: by default glibc raises its mmap threshold to the
    # largest block freed so far, after which such blocks (librdkafka's
    # buffers, start-up's large objects) stay in the heap, resident; fixed,
    # they are returned when freed (about 1.4 MiB less).
    environment = {
        "MALLOC_ARENA_MAX": "2",
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "MALLOC_TRIM_THRESHOLD_": "131072",
        **os.environ,
    }
    os.execve(sys.executable, args, environment)  # noqa: S606 (the same interpreter, no shell)


#: Modules fastavro loads if present, for the block codecs of Avro container
#: files (cramjam's Snappy, Zstandard, Brotli; LZ4): about 1.6 MiB of shared
#: libraries and objects. The agent writes bare Avro bodies, never a container.
UNUSED_CODECS = ("cramjam", "lz4")


def without_unused_codecs() -> None:
    """Make importing :data:`UNUSED_CODECS` fail, as if they were not installed.

    A module name mapped to None in :data:`sys.modules` raises ImportError on
    import, which fastavro takes for a codec library that is not installed.
    Call it before anything imports fastavro.
    """
    for name in UNUSED_CODECS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


#: confluent-kafka's package imports its serializing clients, whose serde
#: builder imports asyncio (with ssl's event-loop side, subprocess and
#: concurrent.futures: about 1.6 MiB). The agent uses the plain Producer.
SERDE_BUILDER = "confluent_kafka._serde_builder"


def _serde_builder_stand_in(name: str) -> Callable[..., NoReturn]:
    if name.startswith("__"):  # __file__, __path__...: a module's, asked by tools
        raise AttributeError(name)

    def unavailable(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(
            f"{SERDE_BUILDER}.{name} is not loaded in the agent process: "
            "it builds confluent-kafka's serializing clients, which the agent does not use"
        )

    return unavailable


def without_serializing_clients() -> None:
    """Stand in for confluent-kafka's serde builder, so ``import confluent_kafka`` skips asyncio.

    confluent-kafka's ``SerializingProducer`` and ``DeserializingConsumer``
    classes are still defined; building one raises a RuntimeError that says
    why. Call it before anything imports confluent_kafka.
    """
    if SERDE_BUILDER in sys.modules:
        return
    stand_in = ModuleType(SERDE_BUILDER, "Stands in for confluent-kafka's serde builder.")
    stand_in.__getattr__ = _serde_builder_stand_in  # type: ignore[method-assign]
    sys.modules[SERDE_BUILDER] = stand_in


def main(argv: list[str]) -> NoReturn:
    """Run the agent with the settings read from file descriptor ``argv[0]``."""
    without_unused_codecs()
    without_serializing_clients()
    from hoststream.errors import ConfigurationError, HoststreamError

    with os.fdopen(int(argv[0]), encoding="utf-8") as handed:
        settings = from_snapshot(handed.read())
    duration_s = float(argv[1]) if len(argv) > 1 else None
    from hoststream.producers.app import run_agent
    from hoststream.runtime import run_component

    # The agent reads the snapshot's attributes exactly as it reads Settings'.
    as_settings = cast("Settings", settings)
    try:
        report = run_component("producer", as_settings, partial(run_agent, duration_s=duration_s))
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except HoststreamError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(report.summary(), file=sys.stderr, flush=True)
    sys.exit(1 if report.lost else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
