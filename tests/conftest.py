"""The tests' shared fixtures live in tests/support; these modules are registered as plugins."""

pytest_plugins = [
    "tests.support.markers",
    "tests.support.services",
    "tests.support.regions",
    "tests.support.secure",
    "tests.support.jaeger",
    "tests.support.api",
    "tests.support.streams",
    "tests.support.alerting",
    "tests.support.recordings",
    "tests.support.tracing_fixtures",
]
