"""The local real services hoststream runs against: Kafka, a schema registry,
VictoriaMetrics and PostgreSQL, each a plain process under ``.hoststream/``.

Start with :class:`Stack`; each service is one module behind :class:`LocalService`.
"""

from hoststream.stack.base import LocalService, ServiceStatus, StackPaths
from hoststream.stack.manager import Stack

__all__ = ["LocalService", "ServiceStatus", "Stack", "StackPaths"]
