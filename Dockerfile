# The spanway image for people who build with Docker (or Podman, Buildah, Kaniko):
#   docker build -t ghcr.io/spanway/spanway:0.1.0 .
# The same layout as `dev/image` writes without Docker: the three binaries in /usr/local/bin,
# the libraries they link against (glibc, libgcc, OpenSSL 3, zlib) and the Mozilla CA bundle,
# run as the non-root user 65532 the Helm chart's security context names. The chart sets each
# container's command (spanway-collector, spanway-ingester or spanway-streaming-analytics).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
      -p spanway-collector -p spanway-ingester -p spanway-streaming-analytics \
 && mkdir /out \
 && cp target/release/spanway-collector target/release/spanway-ingester \
       target/release/spanway-streaming-analytics /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
      --shell /usr/sbin/nologin nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
WORKDIR /home/nonroot
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# The collector's and the ingester's allocator (mimalloc) keeps freed memory resident when the
# node backs it with transparent huge pages; nodes whose THP mode is
# "always" would do so even though the binary asks for none.
ENV MIMALLOC_ALLOW_THP=0
LABEL org.opencontainers.image.title="spanway" \
      org.opencontainers.image.description="spanway collector, ingester and streaming analytics" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 4317 4318
CMD ["spanway-collector"]
