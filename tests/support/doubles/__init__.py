"""Test doubles: every stand-in the tests use instead of a real thing lives here.

- ``kafka``: in-memory Kafka clients, a recording sink and a fake clock, for unit
  tests of the sink loop only.
- ``producer``: a recording Kafka producer and the real event publisher over
  it, for the producer's unit tests only.
- ``alerts``: an alert receiver that accepts everything, for unit tests only.
- ``clock``: a clock that moves only when a test sleeps; ``faust``: a Faust
  message for the stream processor's unit tests.
- ``pagerduty``, ``opsgenie`` (on ``http``): outside HTTP services that cannot run
  on this machine, exported here.

The HTTP doubles are NOT the real services: each is a small local HTTP server on a
loopback port, written from the service's published request and response
formats, that checks request bodies and refuses malformed ones the way the
service documents. Use them to test what hoststream sends and how it reacts
to answers (202, 400, 429, 500); nothing here proves the real service agrees.
"""

from tests.support.doubles.http import FakeHttpServer, RecordedRequest
from tests.support.doubles.opsgenie import FakeOpsgenie
from tests.support.doubles.pagerduty import FakePagerDuty

__all__ = ["FakeHttpServer", "FakeOpsgenie", "FakePagerDuty", "RecordedRequest"]
