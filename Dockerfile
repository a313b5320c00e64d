# The availability engine: one image for `avail flow`, `avail api` and the demo feed.
#   docker build -t avail:dev .
#   docker run --rm avail:dev avail rules check /app/rules
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The lock first, then sources, rules last: editing code or a rule does not reinstall the dependencies.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY atp ./atp
COPY projection ./projection
COPY engine_settings ./engine_settings
COPY rulebook ./rulebook
COPY local_servers ./local_servers
COPY demo_retailer ./demo_retailer
COPY dataflows ./dataflows
COPY availability_api ./availability_api
COPY avail ./avail
# setup.py compiles the core with mypyc (from the lock): gcc for the build only
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null \
    && pip install --no-deps --no-build-isolation . \
    && apt-get purge -y -qq gcc libc6-dev >/dev/null && apt-get autoremove -y -qq >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin avail \
    && mkdir -p /var/lib/avail && chown avail /var/lib/avail
COPY rules ./rules

ENV AVAIL_RULES_DIR=/app/rules
USER avail
EXPOSE 8000
CMD ["avail", "--help"]
