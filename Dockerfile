# watcher in a container: non-root, database on a volume, config by file or WATCHER_* env.
#   docker build -t watcher .
#   docker run -d --name watcher -p 127.0.0.1:8080:8080 -v watcher-data:/data \
#       -e WATCHER_WEB__AUTH_TOKEN="$(openssl rand -hex 16)" watcher
#   docker exec watcher watcher doctor            # what works, what to fix
# then open http://localhost:8080/ and log in with any user name and that token as the password
# (docker exec watcher env | grep AUTH_TOKEN).
# With your config (write one with `watcher init`; secrets in watcher.env, never in the TOML):
#   docker run -d --name watcher -p 127.0.0.1:8080:8080 -v watcher-data:/data \
#       -v "$PWD/watcher.toml:/etc/watcher/watcher.toml:ro" --env-file watcher.env \
#       -e WATCHER_CONFIG=/etc/watcher/watcher.toml watcher
# PostgreSQL store (compose.yaml's cluster profile): docker build --build-arg EXTRAS=postgres -t watcher .
# With podman or buildah, add --format docker: their default OCI format drops the HEALTHCHECK.
# Built without Docker Hub access: podman build --format docker --build-arg BASE=<a local image> .
# where the image has python3 (3.11+), its venv module and useradd (Debian: python3 python3-venv).
ARG BASE=python:3.12-slim
FROM ${BASE}
# pip extras to install, comma-separated (postgres); none by default
ARG EXTRAS=

# STATE_DIRECTORY: where a relative storage.path (the default watcher.db) lives, as under systemd,
# so `docker exec watcher watcher status` reads the daemon's database.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STATE_DIRECTORY=/data \
    WATCHER_WEB__HOST=0.0.0.0 \
    PATH=/opt/watcher/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN python3 -m venv /opt/watcher && /opt/watcher/bin/pip install --no-compile ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin watcher \
    && mkdir -p /data && chown watcher:watcher /data

USER watcher
VOLUME ["/data"]
# The board, the JSON API, /healthz and /metrics. Bound beyond localhost, the board and
# API require a login: set WATCHER_WEB__AUTH_TOKEN (or username + WATCHER_WEB__PASSWORD).
EXPOSE 8080
# Unhealthy when no source has answered for 3 intervals (at least 5 minutes), e.g. no network
# in the container, not only when nothing was polled.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s \
    CMD ["watcher", "health"]
ENTRYPOINT ["watcher"]
CMD ["run"]
