"""hoststream: host metrics streamed through Kafka.

Start reading at :mod:`hoststream.cli`; it wires configuration
(:mod:`hoststream.config`), the Kafka clients (:mod:`hoststream.kafka`) and the
local service stack (:mod:`hoststream.stack`) to the producer, stream processor,
sinks and API packages beside this one.
"""

from hoststream.config import Settings, load_settings
from hoststream.errors import ConfigurationError, HoststreamError

__all__ = ["ConfigurationError", "HoststreamError", "Settings", "__version__", "load_settings"]

__version__ = "0.1.0"
