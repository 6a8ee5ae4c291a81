# strangler: the proxy, the CDC worker and the sample apps in one slim image.
#
#   docker build -t strangler .
#   docker run -p 8080:8080 -p 8081:8081 -e STRANGLER_ADMIN_TOKEN=... \
#     -v "$PWD/routes.yaml:/etc/strangler/routes.yaml:ro" strangler
#
# The entrypoint is the `strangler` CLI: the default command serves the proxy with the
# mounted routes.yaml; `sync -c ...`, `check ...`, `verify -c ...` run the other commands.
# The sample apps are in the image too (python -m sample_monolith, ...), for the
# compose stack in deploy/.

ARG PYTHON_VERSION=3.11
# Must equal [project].version in pyproject.toml (tests/samples/test_deploy.py checks it).
ARG STRANGLER_VERSION=0.1.0

# ---- build: compile wheels for the package and every extra, once ----------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY strangler ./strangler
COPY adapters ./adapters
COPY sample_monolith ./sample_monolith
COPY sample_services ./sample_services
RUN pip wheel --wheel-dir /wheels ".[fast,postgres]"

# ---- runtime: only the installed wheels, a non-root user -------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG STRANGLER_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    STRANGLER_HEALTHCHECK_URL=http://127.0.0.1:8081/healthz
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels "strangler[fast,postgres]==${STRANGLER_VERSION}" \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 strangler \
    && useradd --system --uid 10001 --gid strangler --home-dir /var/lib/strangler \
       --create-home --shell /usr/sbin/nologin strangler \
    && mkdir -p /etc/strangler
COPY --chown=root:root routes.yaml /etc/strangler/routes.yaml
WORKDIR /var/lib/strangler
USER 10001:10001
EXPOSE 8080 8081 8082
# The admin listener's /healthz (override STRANGLER_HEALTHCHECK_URL for the sync worker,
# whose listener is sync.listen). No curl in a slim image: Python does the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['STRANGLER_HEALTHCHECK_URL'], timeout=2)"]
ENTRYPOINT ["strangler"]
CMD ["serve", "-c", "/etc/strangler/routes.yaml"]
