# registry-resolver's image, with Docker (or any BuildKit/buildah builder):
#
#   docker build -t registry-resolver:0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u -d @$(git log -1 --format=%ct) +%Y-%m-%dT%H:%M:%SZ) .
#
# scripts/build-image builds the same image without a daemon: it makes the
# static binary itself and uses this file from `FROM scratch` on.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --locked --target x86_64-unknown-linux-gnu --bin registry-resolver \
 && scripts/image-rootfs target/x86_64-unknown-linux-gnu/release/registry-resolver /rootfs

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
COPY --from=build /rootfs/ /
# The chart runs it as this user, with a read-only root filesystem; the
# embedded store wants a volume at /data.
USER 65532:65532
WORKDIR /data
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/registry-resolver"]
CMD ["serve"]
LABEL org.opencontainers.image.title="registry-resolver" \
      org.opencontainers.image.description="Registry-relative image paths for Kubernetes: a mutating admission webhook, its records API and console" \
      org.opencontainers.image.source="https://github.com/registry-resolver/registry-resolver" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.created="$CREATED"
