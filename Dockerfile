# The Latchkey image: one static-ish binary on distroless, running as 65532 (nonroot).
#   docker build -t latchkey .
#   docker run --rm -p 8080:8080 latchkey                       # all-in-one, SQLite in /var/lib/latchkey
#   docker run --rm latchkey serve auth | serve gateway --auth-url URL | migrate | check-config
# BuildKit caches the cargo registry and target/ between builds (cache mounts).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# target/ is a cache mount, so the binary is copied out within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p latchkey \
 && install -D -m 0755 target/release/latchkey /out/latchkey \
 && mkdir -p /out/data

# glibc and libgcc, CA certificates, no shell, no package manager; user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="latchkey" \
      org.opencontainers.image.description="OAuth 2.1 authorization server for MCP servers" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/latchkey /usr/local/bin/latchkey
# A writable working directory for the development default (SQLite file in the cwd). In
# Kubernetes the root filesystem is read-only and the database is PostgreSQL.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/latchkey
WORKDIR /var/lib/latchkey
# Inside a container, listen on every interface; the built-in defaults are loopback.
ENV LATCHKEY_HTTP_ADDR=0.0.0.0:8080 \
    LATCHKEY_GRPC_ADDR=0.0.0.0:50051 \
    LATCHKEY_METRICS_ADDR=0.0.0.0:9090 \
    LATCHKEY_FORWARD_AUTH_ADDR=0.0.0.0:8081
USER 65532:65532
# 8080 HTTP gateway, 50051 gRPC AuthService, 9090 admin (/metrics, /health/*), 8081
# ForwardAuth (/verify): publish only 8080 to the world.
EXPOSE 8080 8081 50051 9090
ENTRYPOINT ["/usr/local/bin/latchkey"]
CMD ["serve"]
