"""Property-based requests from the OpenAPI document: no input makes the running API answer 5xx.

schemathesis' pytest loader (``schemathesis.pytest.from_fixture``) sets a node
attribute pytest 9 no longer has, so the cases come from its strategies here,
one hypothesis run per operation and generation mode.
"""

from __future__ import annotations

import time

import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from hoststream.api.app import create_app
from hoststream.api.auth import AUDIENCE, ISSUER
from hoststream.config import Settings
from tests.support.api import SECRET

#: The stream never ends by design; tests/unit/api/test_stream.py covers its bounds.
STREAM = "/api/v1/stream/aggregates"
SPEC = create_app(Settings()).openapi()
OPERATIONS = [
    (method.upper(), path)
    for path, methods in SPEC["paths"].items()
    for method in methods
    if path != STREAM
]
# Negative cases break a parameter's schema: an operation without any has none.
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or SPEC["paths"][path][method.lower()].get("parameters")
]


@pytest.fixture(scope="module")
def bearer() -> dict[str, str]:
    # A rate limit of its own: generated requests should reach the handlers, not stop at 429.
    now = int(time.time())
    claims = {
        "sub": "schemathesis",
        "scope": "read:metrics read:alerts",
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "rate_limit_per_minute": 100_000,
    }
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


@pytest.fixture(scope="module")
def api_schema(api_server):
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json", timeout=10)


def test_every_operation_is_exercised(api_schema) -> None:
    served = {
        (op.method.upper(), op.path) for op in (r.ok() for r in api_schema.get_all_operations())
    }
    assert served - {("GET", STREAM)} == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_input_makes_a_server_error(api_schema, bearer, method, path, mode) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case) -> None:
        case.call_and_validate(headers=bearer, checks=[not_a_server_error], timeout=15)

    run()
