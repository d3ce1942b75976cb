"""A minimal Faust application for the smoke test: upper-cases values from one topic to another.

Run as ``python faust_echo.py worker``; topics and broker come from the environment.
"""

import os

import faust

app = faust.App(
    os.environ["ECHO_APP_ID"],
    broker=f"kafka://{os.environ['ECHO_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    topic_replication_factor=1,
)
source = app.topic(os.environ["ECHO_IN"], value_serializer="raw", key_serializer="raw")
sink = app.topic(os.environ["ECHO_OUT"], value_serializer="raw", key_serializer="raw")


@app.agent(source)
async def echo(stream):  # type: ignore[no-untyped-def]
    async for key, value in stream.items():
        await sink.send(key=key, value=value.upper())


if __name__ == "__main__":
    app.main()
