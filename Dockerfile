# syntax=docker/dockerfile:1
# One image per service: `docker build --target <service> -t careers/<service> .` (make image).
#
# Base images are pinned by digest. This repository's build machine cannot reach a container
# registry, so the digests were taken from public Dockerfiles that pin the same tags; docker
# checks them when it pulls. Bump with `docker buildx imagetools inspect <image:tag>`.
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

FROM ${RUST_IMAGE} AS build
# The commit `careersctl --version` names; .git is not sent to the build.
ARG CAREERS_COMMIT=unknown
ENV CAREERS_COMMIT=${CAREERS_COMMIT}
WORKDIR /src
COPY . .
# The registry and target caches survive between builds on the same machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      -p careers-gateway -p careers-occupations -p careers-lmi -p careers-casenotes \
      -p careers-ambassadors -p careersctl \
    && mkdir -p /out \
    && cp target/release/gateway target/release/occupations target/release/lmi \
          target/release/casenotes target/release/ambassadors target/release/careersctl /out/

# Distroless: no shell, no package manager; the C runtime the binaries link against.
FROM ${RUNTIME_IMAGE} AS runtime
USER 65532:65532
WORKDIR /home/nonroot

FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
USER 65532:65532
EXPOSE 8080 50051 9090
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS occupations
COPY --from=build /out/occupations /usr/local/bin/occupations
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/occupations"]

FROM runtime AS lmi
COPY --from=build /out/lmi /usr/local/bin/lmi
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/lmi"]

FROM runtime AS casenotes
COPY --from=build /out/casenotes /usr/local/bin/casenotes
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/casenotes"]

# ambassadors reads the postcode district centroids and the schools register at start.
FROM runtime AS ambassadors
COPY --from=build /out/ambassadors /usr/local/bin/ambassadors
COPY seeds/ambassadors /usr/share/careers/seeds/ambassadors
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/ambassadors"]

# careersctl, for operators' one-off Jobs (keys rewrap, audit verify, replay).
FROM runtime AS careersctl
COPY --from=build /out/careersctl /usr/local/bin/careersctl
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/careersctl"]
