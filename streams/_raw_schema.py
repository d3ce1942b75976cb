"""A Faust schema for topics of bytes: the message's key and value, as fetched.

Faust decodes every message it hands to an agent through its serializer
registry, even with the ``raw`` codec and ``bytes`` types: half a dozen
calls per key and per value that return the bytes aiokafka already gave.
:class:`RawSchema` returns them directly (None stays None), which is what
that chain returns for bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.types import AppT, CodecArg, Message

__all__ = ["RawSchema"]


class RawSchema(faust.Schema[bytes, bytes]):
    """Keys and values are bytes, passed through untouched."""

    def __init__(self) -> None:
        super().__init__(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    def loads_key(
        self,
        app: AppT,
        message: Message,
        *,
        loads: Callable[..., Any] | None = None,
        serializer: CodecArg | None = None,
    ) -> Any:
        return message.key

    def loads_value(
        self,
        app: AppT,
        message: Message,
        *,
        loads: Callable[..., Any] | None = None,
        serializer: CodecArg | None = None,
    ) -> Any:
        return message.value
