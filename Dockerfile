# Sluice container image: one image for every stage (`sluice ingress|inspector|forwarder|recorder`,
# `sluice run`, `sluice config check`, ...). Build: `docker build -t sluice .`
#
# Builder: the Swift 6.3 toolchain image on Debian bookworm (the project's build platform; no
# trixie variant of it is assumed). Bookworm's librdkafka is 2.0, older than the 2.8 Sluice
# needs, so scripts/provision.sh builds librdkafka from Debian trixie's source package into
# .deps/librdkafka, exactly as on a developer machine.
# Runtime: Debian trixie-slim with trixie's own librdkafka1 (>= 2.8) and Hyperscan, so the image
# carries no locally built library. The Swift runtime is linked statically.

FROM swift:6.3-bookworm AS build
WORKDIR /src
# The package manifest first: dependency resolution is cached while only sources change.
COPY Package.swift ./
COPY scripts/provision.sh scripts/provision.sh
RUN set -eux; apt-get update; scripts/provision.sh build; rm -rf /var/lib/apt/lists/*
RUN swift package resolve
# Every target directory the manifest names must exist, even those not built here.
COPY Sources Sources
COPY Tests Tests
COPY Benchmarks Benchmarks
# The commit `sluice version --verbose` prints: `docker build --build-arg SLUICE_BUILD_COMMIT=$(git rev-parse --short HEAD) .`
ARG SLUICE_BUILD_COMMIT=unknown
RUN set -eux; . .deps/env.sh; \
    printf '#define SLUICE_BUILD_COMMIT "%s"\n' "$(printf %s "$SLUICE_BUILD_COMMIT" | tr -cd 'A-Za-z0-9._-')" > Sources/CHyperscan/build_commit.h; \
    PKG_CONFIG_PATH="$RDKAFKA_PREFIX/lib/pkgconfig" swift build -c release --product sluice --static-swift-stdlib; \
    install -D -m 0755 "$(swift build -c release --show-bin-path)/sluice" /out/usr/local/bin/sluice

FROM debian:trixie-slim
# What `ldd sluice` lists besides glibc, libstdc++ and libgcc (in the base image): librdkafka
# (with its lz4, zstd, ssl and sasl dependencies), zlib, brotli and zstd for the content codings,
# OpenSSL. Hyperscan is opened at run time (libhs.so.5; without it detection falls back to pure
# Swift): libhyperscan5 on amd64, its portable fork libvectorscan5 elsewhere.
RUN set -eux; \
    hs=libhyperscan5; [ "$(dpkg --print-architecture)" = amd64 ] || hs=libvectorscan5; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates tzdata librdkafka1 zlib1g libbrotli1 libzstd1 liblz4-1 libssl3t64 "$hs"; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 sluice; \
    useradd --system --uid 10001 --gid sluice --home-dir /var/lib/sluice --no-create-home --shell /usr/sbin/nologin sluice; \
    install -d -o sluice -g sluice -m 0700 /var/lib/sluice
COPY --from=build /out/ /
COPY config/sluice.example.yaml /etc/sluice/sluice.yaml
# Everything Sluice writes goes under data_dir: the compose and Kubernetes configurations set it
# to /var/lib/sluice (a volume), so the root filesystem can be read-only.
VOLUME ["/var/lib/sluice"]
WORKDIR /var/lib/sluice
USER 10001:10001
ENTRYPOINT ["sluice"]
CMD ["--help"]
