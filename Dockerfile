# koordinator: a FROM scratch image with the static binary at /bin/koordinator
# (also /bin/copy). Build with `make image` (docker buildx for amd64 and arm64).
#
# Used as the init container that installs koordinator into a shared volume:
#   initContainers:
#   - name: install-koordinator
#     image: <this image>
#     args: ["/koordinator"]          # an emptyDir mounted at /koordinator
#     volumeMounts: [{name: koordinator, mountPath: /koordinator}]

FROM --platform=$BUILDPLATFORM rust:1-bookworm AS build
ARG TARGETARCH
# ring compiles C, so each target needs a C compiler for it. On an amd64 build
# host: musl-gcc for amd64, the aarch64 cross gcc for arm64; on an arm64 host
# (Apple Silicon): the native gcc for arm64, the x86-64 cross gcc for amd64.
RUN apt-get update -q \
 && case "$(uname -m)" in \
      x86_64) apt-get install -y -q --no-install-recommends musl-tools gcc-aarch64-linux-gnu ;; \
      aarch64) apt-get install -y -q --no-install-recommends gcc gcc-x86-64-linux-gnu ;; \
    esac \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && if [ "$(uname -m)" = aarch64 ]; then \
      export CC_x86_64_unknown_linux_musl=x86_64-linux-gnu-gcc \
             CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=x86_64-linux-gnu-gcc; \
    fi \
 && rustup target add "$target" \
 && cargo build --release --locked --target "$target" --bin koordinator \
 && mkdir -p /out/bin \
 && cp "target/$target/release/koordinator" /out/bin/koordinator \
 && ln -s koordinator /out/bin/copy

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="koordinator" \
      org.opencontainers.image.description="A tiny static PID-1 init that starts and stops the containers of a Kubernetes pod in order" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/koordinator-dev/koordinator"
COPY --from=build /out/bin/ /bin/
USER 65534:65534
ENTRYPOINT ["/bin/koordinator"]
