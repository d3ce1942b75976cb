"""What the tests share: fixtures (registered as plugins in tests/conftest.py), helpers, data.

- ``services``, ``jaeger``, ``alerting``: the real services (Kafka, schema registry,
  VictoriaMetrics, PostgreSQL, Jaeger, Alertmanager) and topics of a test's own.
- ``api``, ``streams``, ``sinks``, ``sink_main``: components run as real processes or
  threads, and reading their results back; ``kafka``, ``processes``: draining topics,
  scraping ``/metrics``, stopping processes; ``tcp_proxy``: cutting a real connection.
- ``recordings`` and ``data/``: recorded hosts for the producer; ``records``: one of each
  Avro record; ``alerts``: alert events;
  ``reference``: an independent reference for window aggregates.
- ``tracing``, ``tracing_fixtures``: in-memory span and log exporters and trace-id helpers.
- ``doubles``: test doubles (in-memory Kafka clients, fake receivers), labelled as such.
"""
