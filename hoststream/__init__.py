"""hoststream: host metrics streamed through Kafka.

Start reading at :mod:`hoststream.cli`; it wires configuration
(:mod:`hoststream.config`), the Kafka clients (:mod:`hoststream.kafka`) and the
local service stack (:mod:`hoststream.stack`) to the producer, stream processor,
sinks and API packages beside this one.
"""

from typing import TYPE_CHECKING, Any

from hoststream.errors import ConfigurationError, HoststreamError

if TYPE_CHECKING:
    from hoststream.config import Settings, load_settings

__all__ = ["ConfigurationError", "HoststreamError", "Settings", "__version__", "load_settings"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The settings' models (pydantic) load on first use: the agent process
    # imports this package without them.
    if name in ("Settings", "load_settings"):
        from hoststream import config

        return getattr(config, name)
    raise AttributeError(f"module 'hoststream' has no attribute {name!r}")
