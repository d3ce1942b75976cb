"""Loading and parsing the ``*.avsc`` files of this package.

The current version of each schema sits beside this module as ``<stem>.avsc``,
and every released version, the current one included, as
``history/<stem>.v<N>.avsc`` (N = 1, 2, ...). Changing a schema therefore means
adding a version there too; a unit test fails until the newest one equals the
current file. Single-object deserializers accept data written with any of
these versions, and the compatibility tests read data written with each of them
using the current schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import parse_schema as _fastavro_parse_schema
from fastavro.schema import to_parsing_canonical_form

from hoststream.errors import SerializationError
from hoststream.schemas._strict_enums import strict_enums
from hoststream.schemas.records import AlertEvent, MetricEvent, WindowAggregate

__all__ = [
    "SCHEMA_STEMS",
    "AvroSchema",
    "load_schema",
    "released_versions",
    "schema_for",
    "schema_versions",
]

#: The schema file (without ``.avsc``) of each record type.
SCHEMA_STEMS: Mapping[type, str] = {
    MetricEvent: "metric_event",
    WindowAggregate: "window_aggregate",
    AlertEvent: "alert_event",
}

_HISTORY_NAME = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>[0-9]+)\.avsc$")


@dataclass(frozen=True, slots=True, eq=False)
class AvroSchema:
    """One Avro schema, parsed once, with what the codecs need computed up front.

    Build it with :meth:`from_json`, or get the package's own schemas from
    :func:`load_schema`, :func:`schema_for` and :func:`schema_versions`.
    """

    #: Where the schema came from (a file name or a schema registry id), for messages.
    source: str
    #: The schema as compact JSON, as given to a schema registry.
    text: str
    #: The fastavro-parsed schema, handed to fastavro's readers and writers.
    parsed: dict[str, Any] = field(repr=False)
    #: The full name of the top-level record, e.g. ``io.hoststream.metrics.MetricEvent``.
    full_name: str
    #: ``parsed`` as the writer schema handed to fastavro's reader: its enums
    #: refuse a negative index, which fastavro reads as a symbol from the end.
    reading: dict[str, Any] = field(repr=False)
    #: The Parsing Canonical Form: what is fingerprinted and compared.
    canonical_form: str = field(repr=False)
    #: CRC-64-AVRO fingerprint of the canonical form, 8 bytes, little-endian as
    #: single-object encoding writes it.
    fingerprint: bytes
    #: The full name and the full names of its aliases: the record names a
    #: writer schema may have for data to resolve to this schema.
    names: frozenset[str] = field(repr=False)

    @classmethod
    def from_json(cls, schema: str | Mapping[str, Any], *, source: str) -> AvroSchema:
        """Parse a schema given as JSON text or as the decoded JSON object.

        Args:
            schema: the schema declaration.
            source: where it came from, named in error messages.

        Raises:
            SerializationError: the text is not JSON or not a valid Avro schema.
        """
        try:
            raw = json.loads(schema) if isinstance(schema, str) else dict(schema)
            # A fresh namespace per schema: two files may each define the same
            # named type (MetricKind), which one shared namespace would refuse.
            parsed = _fastavro_parse_schema(raw, named_schemas={})
        except Exception as exc:  # json and fastavro raise several unrelated types
            raise SerializationError(f"{source} is not a valid Avro schema: {exc}") from exc
        if not isinstance(parsed, dict) or parsed.get("type") != "record":
            raise SerializationError(f"{source} must declare a record at its top level")
        full_name = str(parsed["name"])
        namespace = full_name.rpartition(".")[0]
        aliases = {
            a if "." in a or not namespace else f"{namespace}.{a}" for a in raw.get("aliases", ())
        }
        canonical = to_parsing_canonical_form(parsed)
        # fastavro returns the Rabin fingerprint's bytes as hex in little-endian
        # order, which is the order Avro's single-object encoding puts on the
        # wire (Java: ByteBuffer.order(LITTLE_ENDIAN).putLong). The unit tests
        # check this against an independent implementation of the spec.
        fp = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
        return cls(
            source=source,
            text=json.dumps(raw, separators=(",", ":")),
            parsed=parsed,
            full_name=full_name,
            reading=strict_enums(parsed),
            canonical_form=canonical,
            fingerprint=fp,
            names=frozenset({full_name, *aliases}),
        )


#: The schema files sit beside this module (read as files: importlib.resources
#: would bring tempfile, shutil and zipfile into the agent process).
_FOLDER = Path(__file__).parent


def _read_package_file(*parts: str) -> str:
    node = _FOLDER.joinpath(*parts)
    try:
        return node.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise SerializationError(
            f"schema file schemas/{'/'.join(parts)} is missing; reinstall hoststream"
        ) from exc


@cache
def load_schema(stem: str) -> AvroSchema:
    """The current version of ``schemas/<stem>.avsc``, e.g. ``load_schema("metric_event")``."""
    filename = f"{stem}.avsc"
    return AvroSchema.from_json(_read_package_file(filename), source=f"schemas/{filename}")


@cache
def _history(stem: str) -> tuple[tuple[int, AvroSchema], ...]:
    folder = _FOLDER / "history"
    if not folder.is_dir():
        return ()
    found: list[tuple[int, str]] = []
    for entry in folder.iterdir():
        match = _HISTORY_NAME.match(entry.name)
        if match and match["stem"] == stem:
            found.append((int(match["version"]), entry.name))
    # Newest first, the order schema_versions and released_versions promise.
    return tuple(
        (
            version,
            AvroSchema.from_json(
                _read_package_file("history", name), source=f"schemas/history/{name}"
            ),
        )
        for version, name in sorted(found, reverse=True)
    )


def _stem_for(record_type: type) -> str:
    try:
        return SCHEMA_STEMS[record_type]
    except KeyError:
        known = ", ".join(t.__name__ for t in SCHEMA_STEMS)
        raise SerializationError(
            f"no Avro schema for {record_type.__name__}; records with schemas: {known}"
        ) from None


def schema_for(record_type: type) -> AvroSchema:
    """The current schema of a record type, e.g. ``schema_for(MetricEvent)``."""
    return load_schema(_stem_for(record_type))


def schema_versions(record_type: type) -> tuple[AvroSchema, ...]:
    """Every known version of a record type's schema: the current one, then older ones."""
    stem = _stem_for(record_type)
    current = load_schema(stem)
    return (current, *(s for _, s in _history(stem) if s.fingerprint != current.fingerprint))


def released_versions(record_type: type) -> tuple[tuple[int, AvroSchema], ...]:
    """The versions kept in ``schemas/history/`` as (version number, schema), newest first."""
    return _history(_stem_for(record_type))
