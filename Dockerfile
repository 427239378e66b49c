# syntax=docker/dockerfile:1
#
# Alta Data backend image: `alta serve` by default; `alta worker` for the job worker.
#
#   docker build -t alta-data .
#   docker run --rm -p 8000:8000 -e SECRET_KEY=... -v alta-data:/data alta-data
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

# ---------------------------------------------------------------------------- build stage
FROM rust:1.95-bookworm AS builder

WORKDIR /src
# Queries are checked at run time, never against a live database during the build.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

COPY . .

# The registry and target caches survive between builds; the binary is copied out of the
# cached target dir in the same step, because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin alta \
    && install -m 0755 target/release/alta /usr/local/bin/alta

# -------------------------------------------------------------------------- runtime stage
FROM debian:bookworm-slim AS runtime

LABEL org.opencontainers.image.title="alta-data" \
      org.opencontainers.image.description="Alta Data backend: collection, processing and review of text and audio data" \
      org.opencontainers.image.licenses="Apache-2.0"

# ca-certificates: TLS to Google APIs, GCS and SMTP. curl: the health check only.
# tzdata: the IANA time zones analytics series are bucketed in (`tz=`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl tzdata \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid so volume ownership is predictable.
RUN groupadd --system --gid 10001 alta \
    && useradd --system --uid 10001 --gid alta --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin alta \
    && mkdir -p /data /app \
    && chown alta:alta /data

COPY --from=builder /usr/local/bin/alta /usr/local/bin/alta

ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data

# The working directory holds no .env; configuration comes from the environment.
WORKDIR /app
VOLUME /data
EXPOSE 8000
USER alta:alta

# Shell form so that an overridden PORT is honoured.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT:-8000}/health" > /dev/null || exit 1

ENTRYPOINT ["alta"]
CMD ["serve"]
