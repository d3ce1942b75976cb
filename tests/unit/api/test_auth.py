"""Bearer tokens: JWT scopes and expiry, hashed API keys, rate limits."""

from __future__ import annotations

import hashlib
import time

import jwt
import pytest
import yaml
from pydantic import SecretStr

from hoststream.api.auth import (
    AUDIENCE,
    ISSUER,
    Authenticator,
    InvalidTokenError,
    issue_jwt,
    load_api_keys,
    new_api_key,
)
from hoststream.api.ratelimit import AuthFailureThrottle, RateLimiter
from hoststream.errors import ConfigurationError

SECRET = SecretStr("s" * 48)


def authenticator(keys=()) -> Authenticator:
    return Authenticator(SECRET, list(keys), default_rate_limit=60)


def test_jwt_carries_subject_and_scopes() -> None:
    token = issue_jwt(SECRET, "grafana", ["read:metrics"], ttl_s=60)
    principal = authenticator().authenticate(token)
    assert principal.subject == "jwt:grafana"
    assert principal.scopes == {"read:metrics"}
    assert principal.rate_limit_per_minute == 60


def test_expired_or_foreign_jwt_is_refused() -> None:
    expired = issue_jwt(SECRET, "x", ["read:metrics"], ttl_s=-10)
    with pytest.raises(InvalidTokenError, match="expired"):
        authenticator().authenticate(expired)
    forged = issue_jwt(SecretStr("another secret" * 4), "x", ["read:metrics"], ttl_s=60)
    with pytest.raises(InvalidTokenError, match="invalid token"):
        authenticator().authenticate(forged)
    unsigned = jwt.encode({"sub": "x", "scope": "read:metrics"}, key=None, algorithm="none")
    with pytest.raises(InvalidTokenError):
        authenticator().authenticate(unsigned)


def test_unknown_scope_is_refused_when_issuing() -> None:
    with pytest.raises(ConfigurationError, match="write:everything"):
        issue_jwt(SECRET, "x", ["write:everything"], ttl_s=60)


def test_api_key_is_stored_hashed_and_verifies(tmp_path) -> None:
    key, entry = new_api_key(["read:alerts"])
    secret_part = key.split("_", 2)[2]
    assert secret_part not in yaml.safe_dump(entry)
    assert entry["sha256"] == hashlib.sha256(secret_part.encode()).hexdigest()
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump([{**entry, "rate_limit_per_minute": 5}]))
    auth = authenticator(load_api_keys(keys_file))
    principal = auth.authenticate(key)
    assert principal.scopes == {"read:alerts"}
    assert principal.rate_limit_per_minute == 5
    with pytest.raises(InvalidTokenError):
        auth.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))


def test_malformed_keys_file_names_the_setting(tmp_path) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("- id: x\n")
    with pytest.raises(ConfigurationError, match="HOSTSTREAM_API_KEYS_FILE"):
        load_api_keys(keys_file)


def test_no_secret_means_no_jwt() -> None:
    token = issue_jwt(SECRET, "x", ["read:metrics"], ttl_s=60)
    with pytest.raises(InvalidTokenError, match="no API secret"):
        Authenticator(None, [], 60).authenticate(token)


def test_rate_limiter_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert all(limiter.acquire("a", 3) == 0 for _ in range(3))
    wait = limiter.acquire("a", 3)
    assert wait == pytest.approx(20.0)  # 3 per minute: one token every 20 s
    assert RateLimiter.retry_after(wait) == "20"
    assert limiter.acquire("b", 3) == 0  # buckets are per subject
    now[0] += 20.0
    assert limiter.acquire("a", 3) == 0


def signed(**claims) -> str:
    now = int(time.time())
    base = {"sub": "x", "scope": "read:metrics", "iat": now, "exp": now + 60}
    base.update({"iss": ISSUER, "aud": AUDIENCE})
    return jwt.encode({**base, **claims}, SECRET.get_secret_value(), algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"rate_limit_per_minute": "fast"},
        {"rate_limit_per_minute": 1.5},
        {"rate_limit_per_minute": True},
        {"rate_limit_per_minute": -1},
        {"rate_limit_per_minute": 10**30},
        {"rate_limit_per_minute": [60]},
        {"scope": ["read:metrics"]},
        {"sub": 42},
        {"exp": "tomorrow"},
    ],
)
def test_a_signed_token_with_malformed_claims_is_refused(claims) -> None:
    with pytest.raises(InvalidTokenError):
        authenticator().authenticate(signed(**claims))


def test_a_signed_rate_limit_claim_is_used() -> None:
    assert authenticator().authenticate(signed(rate_limit_per_minute=7)).rate_limit_per_minute == 7


def test_a_keys_file_with_a_malformed_rate_limit_names_the_setting(tmp_path) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(
        yaml.safe_dump([{"id": "a", "sha256": "0", "scopes": [], "rate_limit_per_minute": "x"}])
    )
    with pytest.raises(ConfigurationError, match="rate_limit_per_minute"):
        load_api_keys(keys_file)


def test_failed_authentications_are_throttled_per_address() -> None:
    now = [0.0]
    throttle = AuthFailureThrottle(3, RateLimiter(clock=lambda: now[0]))
    for _ in range(3):
        assert throttle.wait_for("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
    assert throttle.wait_for("10.0.0.1") == pytest.approx(20.0)
    assert throttle.wait_for("10.0.0.2") == 0  # another address is not affected
    now[0] += 20.0
    assert throttle.wait_for("10.0.0.1") == 0
