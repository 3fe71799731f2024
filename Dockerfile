# syntax=docker/dockerfile:1
# Mailstead: one static binary on a distroless base, running as non-root with /data as a volume.

# 1. The admin console (Vite + TypeScript), built once and embedded by build.rs.
FROM node:20-bookworm-slim AS console
WORKDIR /src/admin-ui
COPY admin-ui/package.json admin-ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY admin-ui/ ./
RUN npm run build -- --outDir /console --emptyOutDir

# 2. A fully static binary (glibc with crt-static; DNS goes through hickory, not NSS).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY --from=console /console /console
COPY . .
ENV MAILSTEAD_UI_DIST=/console \
    RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --locked --profile dist --target x86_64-unknown-linux-gnu \
    && cp target/x86_64-unknown-linux-gnu/dist/mailstead /mailstead \
    && mkdir -p /data

# 3. Runtime: no shell, no package manager, uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /mailstead /usr/local/bin/mailstead
COPY --from=build --chown=65532:65532 /data /data
ENV MAILSTEAD_DATA_DIR=/data \
    MAILSTEAD_LISTEN=0.0.0.0:8443
VOLUME ["/data"]
EXPOSE 8443
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/mailstead", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/mailstead"]
CMD ["serve"]
