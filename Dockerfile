# strangler: the proxy, the CDC worker and the sample apps in one slim image.
#
#   docker build -t strangler .                 # with a registry: python:3.11-slim, wheels from PyPI
#   bash scripts/image                          # without: a local Debian base, a wheelhouse, no network
#   docker run -p 8080:8080 -p 8081:8081 -e STRANGLER_ADMIN_TOKEN=... \
#     -v "$PWD/routes.yaml:/etc/strangler/routes.yaml:ro" strangler
#
# The entrypoint is the `strangler` CLI: the default command serves the proxy with the
# mounted routes.yaml; `sync -c ...`, `check ...`, `verify -c ...` run the other commands.
# The sample apps are in the image too (python -m sample_monolith, ...), for the
# compose stack in deploy/.
#
# Every third-party package comes from scripts/requirements-image.lock, hashes checked.
# scripts/image puts those wheels in build/wheelhouse/ and the strangler wheel in
# build/dist/, and the build installs from there with --no-index; without them, pip
# downloads the same locked files and builds strangler from the source copied below.
#
# scripts/image's strangler wheel is the compiled build (mypyc, made on the host with the
# lock's mypy; `strangler --version` in the image says "compiled"). Built here from source
# instead, it is compiled only if the base has a C compiler and Python's headers (a slim
# base has neither: it is then the same code as pure Python).

# Any Debian-based image with python3 (3.11, as the lock) and its venv module.
ARG BASE=python:3.11-slim
# Must equal [project].version in pyproject.toml (tests/samples/test_deploy.py checks it).
ARG STRANGLER_VERSION=0.1.0

# ---- build: a virtualenv with the locked dependencies and strangler ---------------------
FROM ${BASE} AS build
ARG STRANGLER_VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
SHELL ["/bin/sh", "-eu", "-c"]
# The locked dependencies first, in their own layer: a change to strangler's code reuses it.
# The glob lets a build without build/wheelhouse/ go on; with it, its wheels land in wheels/.
COPY scripts/requirements-image.lock build/wheelhous[e] ./wheels/
RUN python3 -m venv /opt/strangler; \
    if ls wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links=wheels; fi; \
    /opt/strangler/bin/pip install "$@" --require-hashes -r wheels/requirements-image.lock
# Then strangler: scripts/image's wheel (build/dist/), else built here from the source.
COPY pyproject.toml setup.py README.md build/dis[t] ./
COPY strangler ./strangler
COPY adapters ./adapters
COPY sample_monolith ./sample_monolith
COPY sample_services ./sample_services
RUN set -- strangler-"${STRANGLER_VERSION}"-*.whl; \
    if [ ! -e "$1" ]; then /opt/strangler/bin/pip wheel --no-deps --wheel-dir . .; fi; \
    set -- strangler-"${STRANGLER_VERSION}"-*.whl; \
    /opt/strangler/bin/pip install --no-index --no-deps "$1"; \
    /opt/strangler/bin/pip uninstall -y -q pip setuptools

# ---- runtime: the virtualenv, a non-root user --------------------------------------------
FROM ${BASE} AS runtime
ARG STRANGLER_VERSION
LABEL org.opencontainers.image.title=strangler \
      org.opencontainers.image.version=${STRANGLER_VERSION}
ENV PATH=/opt/strangler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STRANGLER_HEALTHCHECK_URL=http://127.0.0.1:8081/healthz
RUN groupadd --system --gid 10001 strangler \
    && useradd --system --uid 10001 --gid strangler --home-dir /var/lib/strangler \
       --create-home --shell /usr/sbin/nologin strangler \
    && mkdir -p /etc/strangler
COPY --from=build /opt/strangler /opt/strangler
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
