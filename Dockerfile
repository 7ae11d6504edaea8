# syntax=docker/dockerfile:1
# Bytewax 0.21.1 ships manylinux (glibc) wheels for CPython <= 3.12: use a Debian-based image.
FROM python:3.12-slim-bookworm AS build
# A C compiler for the compiled hot path (mypyc, setup.py); the runtime image needs none.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context (see .dockerignore): stockguard/ and the folders it links as subpackages.
COPY . .
RUN python -m venv /opt/stockguard \
 && /opt/stockguard/bin/pip install --no-cache-dir .

FROM python:3.12-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /app stockguard \
 && mkdir -p /var/lib/stockguard /app/out && chown stockguard /var/lib/stockguard /app/out
COPY --from=build /opt/stockguard /opt/stockguard
# Inside a container the probes and Prometheus come from outside: listen on every address
# (outside containers both default to loopback).
ENV PATH=/opt/stockguard/bin:$PATH PYTHONUNBUFFERED=1 \
    STOCKGUARD_METRICS_HOST=0.0.0.0 STOCKGUARD_HEALTH_HOST=0.0.0.0
WORKDIR /app
USER stockguard
# Prometheus /metrics, /healthz and /readyz, and the gateway (stockguard gateway).
# SIGTERM (docker stop) stops gracefully.
EXPOSE 3030 8081 8080
ENTRYPOINT ["stockguard"]
CMD ["demo"]
