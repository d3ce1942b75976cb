"""A TEST DOUBLE of an alert receiver, for unit tests only: it accepts every alert."""

from __future__ import annotations


class Receiver:
    """An alert receiver that accepts everything."""

    name = "alertmanager"

    async def send(self, alert) -> None:
        pass

    async def aclose(self) -> None:
        pass
