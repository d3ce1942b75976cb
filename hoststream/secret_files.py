"""Secret files re-read when they are replaced: the Kafka SASL password's rotation.

A secret given as a file (``HOSTSTREAM_<NAME>_FILE``) is read once into the
settings. A secret-store agent or Kubernetes rotates it by replacing the file;
:class:`SecretFileWatch` polls the file as :class:`~hoststream.certificates.CertificateWatch`
polls certificates, and hands the new value to its callbacks. For the Kafka
password (:func:`watch_kafka_password`) the callback is librdkafka's
``set_sasl_credentials``: new broker connections authenticate with the new
password, connections already open keep theirs. The value is never logged,
only the setting and the file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hoststream.env_names import ENV_PREFIX, FILE_SUFFIX

if TYPE_CHECKING:
    from hoststream.config import Settings

__all__ = ["SaslClient", "SecretFileWatch", "kafka_password_file", "watch_kafka_password"]

log = logging.getLogger(__name__)

KAFKA_PASSWORD_SETTING = f"{ENV_PREFIX}KAFKA_SASL_PASSWORD{FILE_SUFFIX}".upper()


class SaslClient(Protocol):
    """A librdkafka client (``Producer``, ``Consumer``) whose SASL credentials can change."""

    def set_sasl_credentials(self, username: str, password: str) -> None: ...


def _read(path: Path) -> str:
    # The same trimming as when the settings read it: one trailing newline is not the secret.
    return path.read_text(encoding="utf-8").rstrip("\r\n")


class SecretFileWatch:
    """Notices a secret file replaced on disk and gives its new content to callbacks.

    Args:
        setting: the ``HOSTSTREAM_<NAME>_FILE`` variable naming the file (for logs).
        path: the file.
    """

    def __init__(self, setting: str, path: Path) -> None:
        self.setting = setting
        self.path = path
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._value = _read(path)
        self._stamp = self._signature()

    def _signature(self) -> tuple[float, int, int]:
        status = self.path.stat()
        # The inode too: an atomic replace (Kubernetes' symlink swap) may keep the mtime.
        return (status.st_mtime, status.st_size, status.st_ino)

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the new content whenever the file's content changes."""
        with self._lock:
            self._callbacks.append(callback)

    def check(self) -> bool:
        """Re-read the file if it was replaced; return whether its content changed."""
        try:
            stamp = self._signature()
            if stamp == self._stamp:
                return False
            value = _read(self.path)
        except OSError as exc:
            # Mid-rotation the file may be briefly missing: keep the old value, try again later.
            log.error("cannot read %s (%s): %s", self.path, self.setting, exc.strerror)
            return False
        self._stamp = stamp
        if value == self._value:
            return False
        self._value = value
        log.info(
            "secret file %s (%s) was replaced; new connections use it", self.path, self.setting
        )
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(value)
            except Exception as exc:  # one client's failure must not stop the others
                # The exception's type only: its message could quote the secret.
                log.error("applying %s failed: %s", self.setting, type(exc).__name__)
        return True

    def run(self, stop: threading.Event, interval_s: float) -> threading.Thread:
        """Check every ``interval_s`` in a daemon thread until ``stop`` is set."""

        def loop() -> None:
            while not stop.wait(interval_s):
                self.check()

        thread = threading.Thread(target=loop, name="secret-file-watch", daemon=True)
        thread.start()
        return thread

    def follow(self, client: SaslClient, username: str) -> None:
        """Give ``client`` the new password (with ``username``) whenever the file changes."""
        self.on_change(lambda password: client.set_sasl_credentials(username, password))


def kafka_password_file(settings: Settings) -> Path | None:
    """The file the Kafka SASL password was read from, if it was and librdkafka can change it."""
    protocol = settings.kafka_security_protocol
    if not protocol.startswith("SASL") or settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return None  # set_sasl_credentials applies to PLAIN and SCRAM only
    environ = {key.upper(): value for key, value in os.environ.items()}
    path = environ.get(KAFKA_PASSWORD_SETTING)
    yaml_values = settings.yaml_values
    if path is None and "kafka_sasl_password" not in yaml_values:
        configured = yaml_values.get("kafka_sasl_password_file")
        path = str(configured) if configured is not None else None
    return Path(path) if path else None


def watch_kafka_password(settings: Settings, stop: threading.Event) -> SecretFileWatch | None:
    """Watch the Kafka password file every certificate check interval; None if none is set."""
    path = kafka_password_file(settings)
    if path is None:
        return None
    watch = SecretFileWatch(KAFKA_PASSWORD_SETTING, path)
    watch.run(stop, settings.certificate_check_interval_s)
    return watch
