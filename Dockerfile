# The agentic-loadkit image: `provision` (entrypoint) and `locust` on PATH, run as a
# non-root user.  Build from the repository root:
#   docker build -t agentic-loadkit:latest .
#   docker run --rm agentic-loadkit:latest --help
#   docker run --rm --entrypoint locust agentic-loadkit:latest --help
# docker-compose.override.yml builds and uses it for provision, locust-master and
# locust-worker.  Python 3.11 is the version the test suite runs on.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid so that files in named volumes keep one owner across rebuilds.
RUN groupadd --system --gid 10001 loadkit \
    && useradd --system --uid 10001 --gid loadkit --create-home --home-dir /home/loadkit \
       --shell /usr/sbin/nologin loadkit

# Only what the wheel needs (see [tool.setuptools.package-dir] in pyproject.toml); the
# source stays in /opt/loadkit so that `locust -f /opt/loadkit/scenarios/locustfile.py`
# has a stable path.  .dockerignore keeps state directories and credentials out.
WORKDIR /opt/loadkit
COPY pyproject.toml README.md ./
COPY cli/ cli/
COPY demo/ demo/
COPY provisioning/ provisioning/
COPY scenarios/ scenarios/
COPY fixtures/ fixtures/
RUN pip install . \
    && provision --version \
    && locust --version

# The state directory (credentials pools).  Created here, owned by loadkit and 0700, so
# that an empty named volume mounted on it starts with that owner and mode.
RUN mkdir -p /var/lib/loadkit /work \
    && chown loadkit:loadkit /var/lib/loadkit /work \
    && chmod 0700 /var/lib/loadkit

ENV PROVISION_STATE_DIR=/var/lib/loadkit \
    LOCUST_LOCUSTFILE=/opt/loadkit/scenarios/locustfile.py

USER loadkit
WORKDIR /work

# 8089: Locust web UI and /metrics; 5557: the Locust master's bind port for workers.
EXPOSE 8089 5557

ENTRYPOINT ["provision"]
CMD ["--help"]
