# watcher in a container: non-root, database on a volume, config by file or WATCHER_* env.
#   docker build -t watcher .
#   docker run -d --name watcher -v watcher-data:/data watcher
#   docker run -d -v watcher-data:/data -v $PWD/watcher.toml:/etc/watcher/watcher.toml:ro \
#       -e WATCHER_CONFIG=/etc/watcher/watcher.toml watcher
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WATCHER_STORAGE__PATH=/data/watcher.db \
    WATCHER_WEB__HOST=0.0.0.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN pip install . && useradd --system --uid 10001 --home-dir /data watcher \
    && mkdir -p /data && chown watcher /data

USER watcher
VOLUME ["/data"]
# The board, the JSON API, /healthz and /metrics. Bound beyond localhost, the board and
# API require a login: set WATCHER_WEB__AUTH_TOKEN (or username + WATCHER_WEB__PASSWORD).
EXPOSE 8080
# Unhealthy when no source has been polled for 3 intervals (at least 5 minutes).
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s \
    CMD ["watcher", "health"]
ENTRYPOINT ["watcher"]
CMD ["run"]
