"""What a database error means for the batch that met it: retry, dead-letter, or stop.

PostgreSQL (and CockroachDB) name every error with a SQLSTATE whose first two
characters are its class. Only an error of availability passes with time, so
only those pause the sink and retry the batch; an error of configuration
stops it; every other error is taken to be caused by the records, and the
SQL sink bisects the batch down to the records that cause it and
dead-letters them, with the error. Retrying those would stall the sink for
every host, forever (one 10 kB host id: SQLSTATE 54000, index row too big).
"""

from __future__ import annotations

from enum import StrEnum

import psycopg

__all__ = ["ErrorCause", "cause_of"]


class ErrorCause(StrEnum):
    """What caused a database error, hence what to do about it."""

    #: The database is down, overloaded, restarting or timed out: pause and retry.
    AVAILABILITY = "availability"
    #: hoststream's statements or credentials are refused: stop until a person acts.
    CONFIGURATION = "configuration"
    #: The records (or one of them) cannot be stored: find them, dead-letter them.
    CONTENT = "content"


# 08 connection exception, 40 transaction rollback (serialization failure,
# deadlock), 53 insufficient resources (disk full, out of memory, too many
# connections), 58 system error (I/O): all pass with time.
_AVAILABILITY_CLASSES = frozenset({"08", "40", "53", "58"})
_AVAILABILITY_CODES = frozenset(
    {
        "57014",  # query_canceled: the statement timeout
        "55P03",  # lock_not_available: a lock timeout
        "55006",  # object_in_use
        "25006",  # read_only_sql_transaction: a replica being promoted
    }
)
# 28 invalid authorization, 42 syntax error or access rule violation (a
# missing table or privilege), 3D000 no such database.
_CONFIGURATION_CLASSES = frozenset({"28", "42"})
_CONFIGURATION_CODES = frozenset({"3D000"})


def cause_of(exc: psycopg.Error, sqlstate: str | None = None) -> ErrorCause:
    """The cause of ``exc``, from its SQLSTATE (``sqlstate`` overrides the error's own).

    An error without a SQLSTATE was raised by the client: a value it could
    not send (a NUL character in text: :class:`psycopg.DataError`) is
    content; anything else (no connection, a timeout) is availability.
    """
    state = sqlstate if sqlstate is not None else (getattr(exc, "sqlstate", None) or "")
    if not state:
        return ErrorCause.CONTENT if isinstance(exc, psycopg.DataError) else ErrorCause.AVAILABILITY
    cls = state[:2]
    if cls in _AVAILABILITY_CLASSES or state.startswith("57P") or state in _AVAILABILITY_CODES:
        return ErrorCause.AVAILABILITY
    if cls in _CONFIGURATION_CLASSES or state in _CONFIGURATION_CODES:
        return ErrorCause.CONFIGURATION
    # 22 data exception, 23 integrity constraint violation, 54 program limit
    # exceeded, and every other class: retrying the same rows cannot help.
    return ErrorCause.CONTENT
