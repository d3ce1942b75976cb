"""Prometheus Alertmanager, from the Debian package ``prometheus-alertmanager``.

It listens on 127.0.0.1:9094, not on its usual 9093, which the local Kafka
controller already holds. Gossip is turned off (an empty
``--cluster.listen-address``): a single local instance has no peers, and the
gossip port would be one more port to collide.
"""

from __future__ import annotations

import shutil

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LoopbackHttpService, StackPaths

__all__ = ["ALERTMANAGER_PORT", "Alertmanager"]

ALERTMANAGER_PORT = 9094

# The smallest configuration Alertmanager accepts: one receiver that notifies
# nobody. Its API, routing tree and silences still work, which is what the
# alert sink and its tests need; a real deployment brings its own file.
_CONFIG = """\
# Written by hoststream's local stack; rewritten at every start.
route:
  receiver: hoststream-null
  group_by: [alertname, instance]
receivers:
  - name: hoststream-null
"""


class Alertmanager(LoopbackHttpService):
    """One Alertmanager on loopback, its storage under the stack's data folder.

    Args:
        paths: the stack's folders.
        port: the HTTP port on 127.0.0.1 (API and UI).
    """

    health_path = "/-/ready"

    def __init__(self, paths: StackPaths, port: int = ALERTMANAGER_PORT) -> None:
        super().__init__("alertmanager", paths, port)

    @property
    def config_file(self) -> str:
        return str(self.paths.config(self.name) / "alertmanager.yml")

    def prepare(self) -> None:
        self.paths.config(self.name).mkdir(parents=True, exist_ok=True)
        self.paths.data(self.name).mkdir(parents=True, exist_ok=True)
        with open(self.config_file, "w", encoding="utf-8") as out:
            out.write(_CONFIG)

    def command(self) -> list[str]:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise PrerequisiteMissingError(
                "prometheus-alertmanager is not installed; run `make install` "
                "(or `apt-get install prometheus-alertmanager`)"
            )
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.path={self.paths.data(self.name)}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # Empty: no gossip cluster (and no second port) for a single instance.
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
