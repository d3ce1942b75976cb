"""Test doubles of outside HTTP services that cannot run on this machine.

They are NOT the real services: each is a small local HTTP server on a
loopback port, written from the service's published request and response
formats, that checks request bodies and refuses malformed ones the way the
service documents. Use them to test what hoststream sends and how it reacts
to answers (202, 400, 429, 500); nothing here proves the real service agrees.
"""

from tests.support.doubles.http import FakeHttpServer, RecordedRequest
from tests.support.doubles.opsgenie import FakeOpsgenie
from tests.support.doubles.pagerduty import FakePagerDuty

__all__ = ["FakeHttpServer", "FakeOpsgenie", "FakePagerDuty", "RecordedRequest"]
