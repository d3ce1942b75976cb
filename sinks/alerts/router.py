"""The contract every alert receiver implements, and what their HTTP calls share.

A router sends one alert event (firing or resolved) to one receiver and
returns once the receiver accepted it, or raises
:class:`~hoststream.errors.RetryableDeliveryError` /
:class:`~hoststream.errors.PermanentDeliveryError`. Retrying, ordering and
dead-lettering live in the sink, so a new receiver is one module with one
class (Opsgenie's API is being retired in April 2027; its successor will be
such a module).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import SecretStr

from hoststream.errors import (
    PermanentDeliveryError,
    RateLimitedDeliveryError,
    RetryableDeliveryError,
)
from hoststream.schemas import AlertEvent

__all__ = ["HttpRouter", "Router", "iso8601", "post_json", "redact", "summary_of"]

# Statuses that pass with time; every other 4xx blames the request.
_TRANSIENT_4XX = frozenset({408, 425, 429})
# A receiver's error text is kept for people reading the dead-letter topic,
# not whole HTML error pages.
_MAX_DETAIL = 500


@runtime_checkable
class Router(Protocol):
    """Sends alerts to one receiver (PagerDuty, Opsgenie, Alertmanager, ...).

    ``name`` is the receiver's name in the routing file. :meth:`send` must be
    idempotent: an alert may be sent again after a crash or a retry, and the
    receiver must treat it as the same alert (dedup key, alias, label set).
    """

    name: str

    async def send(self, alert: AlertEvent) -> None:
        """Deliver ``alert``; return only once the receiver accepted it.

        Raises:
            RetryableDeliveryError: down, failing or rate-limited; send again later.
            PermanentDeliveryError: the receiver refused this alert for good.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class HttpRouter:
    """What the HTTP receivers' routers share: their name, and a client closed with them.

    Args:
        name: the receiver's name in the routing file.
        client: the HTTP client to use; None: a new one, closed by :meth:`aclose`.
        timeout_s: the new client's per-request timeout.
    """

    def __init__(self, name: str, client: httpx.AsyncClient | None, timeout_s: float) -> None:
        self.name = name
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        """Close the client, unless it was handed in (its owner closes it)."""
        if self._own_client:
            await self._client.aclose()


def iso8601(millis: int) -> str:
    """UTC milliseconds since the epoch as RFC 3339, e.g. ``2026-11-27T14:00:00.000Z``."""
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def summary_of(alert: AlertEvent) -> str:
    """The rule's summary annotation, or a sentence built from the event."""
    summary = alert.annotations.get("summary", "").strip()
    if summary:
        return summary
    return (
        f"{alert.rule} on {alert.host}: {alert.metric} = {alert.value:g} "
        f"(threshold {alert.threshold:g})"
    )


def redact(text: str, secrets: Iterable[SecretStr | None]) -> str:
    """``text`` with every secret's value replaced by ``**********``.

    Receivers sometimes echo a request back in their error message; that text
    ends up in exceptions, logs and dead-letter headers.
    """
    for secret in secrets:
        if secret is not None:
            value = secret.get_secret_value()
            if value:
                text = text.replace(value, "**********")
    return text


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):  # absent, or an HTTP date: rare enough to not parse
        return None


async def post_json(
    client: httpx.AsyncClient,
    receiver: str,
    url: str,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[SecretStr | None] = (),
    accepted: Iterable[int] = (200, 201, 202, 204),
) -> httpx.Response:
    """POST ``body`` as JSON and classify the answer.

    Returns the response when its status is in ``accepted``.

    Raises:
        RetryableDeliveryError: no answer, 408/425/429 or 5xx (with ``Retry-After``
            when the receiver sent one); for 429 a :class:`RateLimitedDeliveryError`.
        PermanentDeliveryError: any other status.
    """
    secrets = list(secrets)
    try:
        response = await client.post(
            url,
            content=json.dumps(body, separators=(",", ":"), allow_nan=False).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
    except httpx.TransportError as exc:
        # The exception text may name the URL, never a header or the body.
        raise RetryableDeliveryError(
            receiver, redact(f"no answer from {url}: {type(exc).__name__}: {exc}", secrets)
        ) from None
    status = response.status_code
    if status in set(accepted):
        return response
    detail = redact(response.text[:_MAX_DETAIL], secrets)
    reason = f"HTTP {status} from {redact(url, secrets)}: {detail}"
    if status == 429:
        raise RateLimitedDeliveryError(receiver, reason, _retry_after(response))
    if status in _TRANSIENT_4XX or status >= 500:
        raise RetryableDeliveryError(receiver, reason, _retry_after(response))
    raise PermanentDeliveryError(receiver, reason)
