"""Bearer tokens: API keys (stored hashed) and HS256 JWTs with scopes.

An API key looks like ``hsk_<key id>_<secret>``; only the SHA-256 of the secret
is stored (keys are 32 random bytes, so a slow password hash buys nothing).
A JWT carries ``sub``, ``scope`` (space-separated), ``exp``, ``iss`` and ``aud``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from pydantic import SecretStr

from hoststream.config import Settings
from hoststream.errors import ConfigurationError

__all__ = [
    "SCOPES",
    "ApiKey",
    "Authenticator",
    "InvalidTokenError",
    "Principal",
    "ensure_dev_secret",
    "issue_jwt",
    "new_api_key",
    "resolve_secret",
]

#: Every scope the API knows.
SCOPES = ("read:metrics", "read:alerts")
ISSUER = "hoststream"
AUDIENCE = "hoststream-api"
KEY_PREFIX = "hsk_"
#: The highest per-token rate limit a key or JWT may name.
MAX_RATE_LIMIT_PER_MINUTE = 1_000_000


class InvalidTokenError(Exception):
    """The bearer token is missing, malformed, expired or unknown."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, what they may read and how fast."""

    subject: str
    scopes: frozenset[str]
    rate_limit_per_minute: int


@dataclass(frozen=True)
class ApiKey:
    """One stored API key: its id, the SHA-256 of its secret, scopes and rate limit."""

    key_id: str
    secret_sha256: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None = None


def resolve_secret(settings: Settings) -> SecretStr | None:
    """The JWT secret: the setting, else ``<state_dir>/api-secret`` if it exists."""
    if settings.api_secret is not None:
        return settings.api_secret
    path = settings.state_dir / "api-secret"
    if path.exists():
        return SecretStr(path.read_text().strip())
    return None


def ensure_dev_secret(settings: Settings) -> SecretStr:
    """The JWT secret, creating ``<state_dir>/api-secret`` (mode 0600) if there is none."""
    secret = resolve_secret(settings)
    if secret is not None:
        return secret
    path = settings.state_dir / "api-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secrets.token_urlsafe(48))
    return SecretStr(path.read_text().strip())


def issue_jwt(secret: SecretStr, subject: str, scopes: list[str], ttl_s: int) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ConfigurationError("--scopes", f"unknown scope {unknown[0]!r}; known: {SCOPES}")
    now = int(time.time())
    claims = {
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl_s,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    return jwt.encode(claims, secret.get_secret_value(), algorithm="HS256")


def new_api_key(scopes: list[str]) -> tuple[str, dict[str, Any]]:
    """A new API key and the entry to store for it in the keys file."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ConfigurationError("--scopes", f"unknown scope {unknown[0]!r}; known: {SCOPES}")
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    entry = {
        "id": key_id,
        "sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "scopes": scopes,
    }
    return f"{KEY_PREFIX}{key_id}_{secret}", entry


def load_api_keys(path: Path | None) -> list[ApiKey]:
    if path is None:
        return []
    try:
        raw = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError("HOSTSTREAM_API_KEYS_FILE", f"cannot read {path}: {exc}") from exc
    keys = []
    for n, entry in enumerate(raw if isinstance(raw, list) else [None]):
        if not isinstance(entry, dict) or not {"id", "sha256", "scopes"} <= set(entry):
            raise ConfigurationError(
                "HOSTSTREAM_API_KEYS_FILE", f"entry {n} needs id, sha256 and scopes"
            )
        rate = entry.get("rate_limit_per_minute")
        if rate is not None and not _is_rate_limit(rate):
            raise ConfigurationError(
                "HOSTSTREAM_API_KEYS_FILE",
                f"entry {n}: rate_limit_per_minute must be an integer from 1 to"
                f" {MAX_RATE_LIMIT_PER_MINUTE}",
            )
        if not isinstance(entry["scopes"], list):
            raise ConfigurationError(
                "HOSTSTREAM_API_KEYS_FILE", f"entry {n}: scopes must be a list"
            )
        keys.append(
            ApiKey(
                str(entry["id"]),
                str(entry["sha256"]),
                frozenset(map(str, entry["scopes"])),
                rate,
            )
        )
    return keys


class Authenticator:
    """Turns a bearer token into a :class:`Principal`.

    Args:
        secret: verifies JWTs; None: JWTs are refused.
        api_keys: the stored keys.
        default_rate_limit: per-minute limit when the token names none.
    """

    def __init__(
        self, secret: SecretStr | None, api_keys: list[ApiKey], default_rate_limit: int
    ) -> None:
        self._secret = secret
        self._keys = {k.key_id: k for k in api_keys}
        self._default_rate = default_rate_limit

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(
            resolve_secret(settings),
            load_api_keys(settings.api_keys_file),
            settings.api_rate_limit_per_minute,
        )

    def authenticate(self, token: str) -> Principal:
        if token.startswith(KEY_PREFIX):
            return self._api_key(token)
        return self._jwt(token)

    def _api_key(self, token: str) -> Principal:
        key_id, sep, secret = token.removeprefix(KEY_PREFIX).partition("_")
        key = self._keys.get(key_id)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        # compare_digest: the time taken must not tell how much of a hash matched.
        if not sep or key is None or not hmac.compare_digest(digest, key.secret_sha256):
            raise InvalidTokenError("unknown API key")
        return Principal(
            f"key:{key_id}", key.scopes, key.rate_limit_per_minute or self._default_rate
        )

    def _jwt(self, token: str) -> Principal:
        if self._secret is None:
            raise InvalidTokenError("JWTs are not accepted: no API secret is configured")
        try:
            claims = jwt.decode(
                token,
                self._secret.get_secret_value(),
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"invalid token: {exc}") from exc
        # Signed claims are still input: a wrong type is a bad token, never a crash.
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidTokenError("invalid token: the scope claim must be a string")
        rate = claims.get("rate_limit_per_minute")
        if rate is not None and not _is_rate_limit(rate):
            raise InvalidTokenError(
                "invalid token: rate_limit_per_minute must be an integer from 1 to"
                f" {MAX_RATE_LIMIT_PER_MINUTE}"
            )
        return Principal(
            f"jwt:{claims['sub']}", frozenset(scope.split()), rate or self._default_rate
        )


def _is_rate_limit(value: object) -> bool:
    # bool is an int subclass; True is no rate limit.
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 1 <= value <= MAX_RATE_LIMIT_PER_MINUTE
    )
