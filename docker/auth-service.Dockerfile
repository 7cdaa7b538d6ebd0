# syntax=docker/dockerfile:1
# Multi-stage image of the gRPC auth service. Build from the repository root:
#   docker build -f docker/auth-service.Dockerfile -t baatcheet/auth-service .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p auth-service \
 && cp target/release/auth-service /usr/local/bin/auth-service

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home auth
COPY --from=build /usr/local/bin/auth-service /usr/local/bin/auth-service
USER 10001
WORKDIR /data
ENV GRPC_ADDR=0.0.0.0:50051 \
    DATA_DIR=/data \
    LOG_FORMAT=json
EXPOSE 50051
# `auth-service healthcheck` asks grpc.health.v1 on GRPC_ADDR and exits 0 only when SERVING.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/auth-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/auth-service"]
