# syntax=docker/dockerfile:1
# Multi-stage image of the HTTP/JSON edge gateway. Build from the repository root:
#   docker build -f docker/edge-gateway.Dockerfile -t baatcheet/edge-gateway .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p edge-gateway \
 && cp target/release/edge-gateway /usr/local/bin/edge-gateway

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --no-create-home gateway
COPY --from=build /usr/local/bin/edge-gateway /usr/local/bin/edge-gateway
USER 10002
ENV HTTP_HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
# `edge-gateway healthcheck` asks GET /healthz on PORT and exits 0 only on 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/edge-gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/edge-gateway"]
