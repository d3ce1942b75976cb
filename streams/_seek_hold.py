"""No source message is delivered while Faust seeks to the committed offsets after a rebalance.

After a rebalance Faust restores the window table from its changelog with the
consumer's flow on (its fetcher reads the changelog). Then
(``Recovery.on_recovery_completed``) it resumes the source partitions, seeks
them to the group's committed offsets and resumes the flow, which empties the
agents' queues. The fetcher runs through that seek. It fetches the source
partitions as soon as they are resumed and hands their first messages to the
agent's queue, which the resume then empties, while it goes on delivering the
rest of what it fetched before the seek. The consumer's read position then
lies past the emptied messages, so it drops them as already read when the
fetch from the committed offset brings them again. They are lost: never
aggregated, and committed past. A worker restarted after SIGKILL lost a
partition's first event this way, and that window came out one sample short.

Faust announces the end of the rebalance (``app.on_rebalance_complete``) just
before that seek, and on every path that performs it. Stopping the consumer's
flow there ends the delivery of anything fetched before the seek. Faust
resumes the flow itself once the seek is done, and everything from the
committed offset is fetched again. A message the agent had already taken is
then delivered twice, which changes no aggregate: a redelivered sample
replaces itself.
"""

from __future__ import annotations

from typing import Any

import faust

__all__ = ["hold_fetching_while_seeking"]


def hold_fetching_while_seeking(app: faust.App) -> None:
    """Stop the consumer's flow when Faust is about to seek after a rebalance."""

    @app.on_rebalance_complete.connect
    async def stop_flow_before_seek(_app: object, /, *_args: Any, **_kwargs: Any) -> None:
        # Not flow_control.suspend(): that would have the streams skip what is
        # queued, and the seek brings it again anyway.
        app.consumer.stop_flow()
