# One hoststream image for every component; the command picks it:
#   docker run IMAGE produce | stream | sink victoriametrics|sql|alerts | api
# Built in two stages so the runtime image has no compiler and no pip cache.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# The pins first, so a code change does not re-resolve every dependency.
COPY pyproject.toml constraints.txt README.md ./
COPY hoststream ./hoststream
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
COPY schemas ./schemas
COPY api ./api
RUN python -m venv /opt/hoststream \
 && /opt/hoststream/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim-bookworm
# A fixed numeric uid so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 hoststream \
 && useradd --system --uid 10001 --gid hoststream --home-dir /var/lib/hoststream \
      --create-home --shell /usr/sbin/nologin hoststream
COPY --from=build /opt/hoststream /opt/hoststream
ENV PATH=/opt/hoststream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOSTSTREAM_STATE_DIR=/var/lib/hoststream \
    HOSTSTREAM_LOG_FORMAT=json \
    HOSTSTREAM_METRICS_HOST=0.0.0.0 \
    HOSTSTREAM_API_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/hoststream
# The API's port and the /metrics port the chart and compose give every component.
EXPOSE 8000 9100
ENTRYPOINT ["hoststream"]
CMD ["--help"]
