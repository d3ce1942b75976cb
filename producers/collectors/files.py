"""The kernel's text files as a data source: /proc and /sys, under a root given as a parameter.

Most of node_exporter's collectors are parsers of these files, and so are
hoststream's (:mod:`~hoststream.producers.collectors.kernel`,
:mod:`~hoststream.producers.collectors.netstats`, ...). They read through a
:class:`FileSource`, so unit tests hand them a recorded tree
(``tests/support/data/host``) and assert exact values.
"""

from __future__ import annotations

import os
from typing import Protocol

__all__ = ["FileSource", "HostFiles"]

_CHUNK = 65536


class FileSource(Protocol):
    """Absolute paths such as ``/proc/meminfo`` read from some root."""

    def read(self, path: str) -> str:
        """The file's text; raises ``OSError`` when it cannot be read."""
        ...

    def listdir(self, path: str) -> list[str]:
        """The directory's entries, sorted; raises ``OSError`` when it does not exist."""
        ...

    def exists(self, path: str) -> bool: ...

    def realpath(self, path: str) -> str:
        """The path with its symlinks resolved, inside the same root."""
        ...


class HostFiles:
    """A :class:`FileSource` over a directory tree: ``/`` for this host, a recording in tests.

    Args:
        root: the directory standing for ``/``; point it at the host's root
            (e.g. ``/host``) when running in a container.

    Reads use ``os.open``/``os.read`` (a few µs a file, about half of
    ``open().read()``), one ``read`` per file where it fits in 64 KiB: a
    collection reads over a hundred small files.
    """

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._prefix = "" if self.root == "/" else self.root

    def read(self, path: str) -> str:
        fd = os.open(self._prefix + path, os.O_RDONLY)
        try:
            data = os.read(fd, _CHUNK)
            # /proc and /sys hand a small file over in one read; only a read
            # that fills the buffer may have more behind it.
            if len(data) == _CHUNK:
                chunks = [data]
                while chunk := os.read(fd, _CHUNK):
                    chunks.append(chunk)
                data = b"".join(chunks)
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace")

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._prefix + path))

    def exists(self, path: str) -> bool:
        return os.path.exists(self._prefix + path)

    def realpath(self, path: str) -> str:
        resolved = os.path.realpath(self._prefix + path)
        if self._prefix and resolved.startswith(self._prefix):
            return resolved[len(self._prefix) :] or "/"
        return resolved

    def __repr__(self) -> str:
        return f"HostFiles({self.root!r})"
