# registry-resolver: a static binary on a distroless base, non-root.
# Build: docker build -t registry-resolver/registry-resolver:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin registry-resolver \
 && cp target/x86_64-unknown-linux-musl/release/registry-resolver /registry-resolver

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /registry-resolver /usr/local/bin/registry-resolver
# The chart runs as 65532 (distroless "nonroot") with a read-only root filesystem.
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/registry-resolver"]
CMD ["serve"]
