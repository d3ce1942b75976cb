"""vmalert (Debian package ``victoria-metrics``): hoststream's rules about itself.

It evaluates ``deploy/vmalert/hoststream-self.yml`` (consumer lag growing,
dead letters, sink write failures, producer drops, a component's ``/metrics``
gone) against the stack's VictoriaMetrics and sends what fires to the stack's
Alertmanager.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LoopbackHttpService, StackPaths

__all__ = ["SELF_RULES", "VMALERT_PORT", "VmAlert"]

VMALERT_PORT = 8880
#: The rules shipped for production use; the local stack runs them as they are.
SELF_RULES = Path(__file__).resolve().parents[2] / "deploy" / "vmalert" / "hoststream-self.yml"


class VmAlert(LoopbackHttpService):
    """vmalert on loopback.

    Args:
        paths: the stack's folders.
        port: its HTTP port (API, UI, ``/health``).
        datasource_url: the VictoriaMetrics it queries.
        notifier_url: the Alertmanager it sends to.
        rule_files: rule files to evaluate (default: :data:`SELF_RULES`).
        evaluation_interval: how often a group without its own ``interval`` runs.
        name: the service's name (its log and pid file); tests run their own.
    """

    def __init__(
        self,
        paths: StackPaths,
        port: int,
        datasource_url: str,
        notifier_url: str,
        *,
        rule_files: list[Path] | None = None,
        evaluation_interval: str = "30s",
        name: str = "vmalert",
    ) -> None:
        super().__init__(name, paths, port)
        self.datasource_url = datasource_url
        self.notifier_url = notifier_url
        self.rule_files = rule_files or [SELF_RULES]
        self.evaluation_interval = evaluation_interval

    def command(self) -> list[str]:
        binary = shutil.which("vmalert")
        if binary is None:
            raise PrerequisiteMissingError(
                "vmalert is not installed; run `make install` "
                "(or `apt-get install victoria-metrics`, which ships it)"
            )
        return [
            binary,
            *(f"-rule={path}" for path in self.rule_files),
            f"-datasource.url={self.datasource_url}",
            f"-notifier.url={self.notifier_url}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-evaluationInterval={self.evaluation_interval}",
            # Links in the alerts point at this vmalert's UI.
            f"-external.url={self.address}",
            "-loggerLevel=WARN",
        ]
