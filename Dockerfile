# syntax=docker/dockerfile:1
#
# Images of the seat-reservation service: `docker compose up --build` (docker-compose.yml) builds
# and runs them; by hand:
#
#   docker build --target api    -t seat-reservation-api .
#   docker build --target worker -t seat-reservation-worker .
#
# One target per binary rather than one image with both: each image holds only the program it
# runs and starts it by itself (no command to pick), and the two targets share every stage up to
# the last, so building both compiles the workspace once. `docker build .` without --target
# builds the last stage, `api`.
#
# Stages: chef (Rust toolchain + cargo-chef) -> planner (dependency recipe) -> builder (compiles
# the dependencies from the recipe, then the service) -> runtime (Debian slim, non-root) ->
# worker / api.

# The builder's and the runtime's Debian release must match: the binaries link the glibc they
# were built against. Override both together, e.g. --build-arg DEBIAN_RELEASE=trixie.
ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The recipe lists the workspace's manifests and Cargo.lock only, so it (and the dependency layer
# cooked from it below) changes only when dependencies change, not on every source edit.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer stays cached until Cargo.toml / Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin api --bin worker
COPY . .
# --locked: the build uses exactly Cargo.lock, as CI does. No TLS crate is in the lock file
# (Redis and HTTP are plain TCP), so the binaries need only glibc, libm and libgcc_s at run time.
RUN cargo build --release --locked --bin api --bin worker \
    && install -D -m 0755 -t /out target/release/api target/release/worker

# ---------------------------------------------------------------- run
# debian-slim rather than distroless: it has bash, which the compose health check of the API uses
# (bash's /dev/tcp; no curl or wget is installed), and a shell to look around with `docker exec`.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# A fixed, unprivileged user. LOG_DIR (/app/logs) is the only place it writes; config/ stays
# root-owned and read-only. A named volume mounted on /app/logs takes this ownership when new.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /app/logs \
    && chown app:app /app/logs
WORKDIR /app
COPY config/ /app/config/
# docs/CONTRACT.md §4 settings; environment variables override config/default.toml. The API listens on
# 127.0.0.1 unless BIND says otherwise, and in a container that address is unreachable from
# outside, hence BIND=0.0.0.0 here.
ENV CONFIG_DIR=/app/config \
    LOG_DIR=/app/logs \
    BIND=0.0.0.0 \
    PORT=3000
# Numeric, so that a runtime (Kubernetes runAsNonRoot, say) can tell it is not root.
USER 10001:10001
# Both binaries stop cleanly on SIGTERM (the default stop signal), finishing what they were doing.

FROM runtime AS worker
COPY --from=builder /out/worker /usr/local/bin/worker
ENTRYPOINT ["/usr/local/bin/worker"]

FROM runtime AS api
COPY --from=builder /out/api /usr/local/bin/api
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/api"]
