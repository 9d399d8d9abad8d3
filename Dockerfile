# Chihaya container image: a static binary on an empty (scratch) base,
# running as an unprivileged user, with the build stage's CA certificates
# so that https fetches (the jwt hook's jwk_set_url, rediss://) verify.
#
#   docker build -t chihaya \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse HEAD)" .
#   docker run --rm -p 6969:6969/tcp -p 6969:6969/udp -p 127.0.0.1:6880:6880 chihaya
#
# GO_IMAGE is the build stage's base: any image with Go at the version
# go.mod asks for, a POSIX shell, sed, and a CA bundle at
# /etc/ssl/certs/ca-certificates.crt (the golang Debian images have one).
# Without a registry, make one locally and pass it (scripts/check-dist.sh
# does, with buildah):
#   --build-arg GO_IMAGE=localhost/chihaya-go-builder:go1.26.8

ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build

# Module downloads in their own layer, so that a source change does not
# fetch them again.
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download

COPY . .

# VERSION and COMMIT end up in `chihaya version` and the image labels; the
# .git folder is not in the build context, so the toolchain cannot record
# them itself.
ARG VERSION=""
ARG COMMIT=""
ENV CGO_ENABLED=0 GOTOOLCHAIN=local

# The image's configuration is the example one, with the metrics server on
# every address so that probes and Prometheus reach it from outside the
# container; the sed is checked, so that a changed example fails the build
# instead of shipping an unreachable metrics server.
RUN go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/chihaya ./cmd/chihaya \
 && sed 's/^  metrics_addr: "127.0.0.1:6880"$/  metrics_addr: ":6880"/' example_config.yaml >/out/chihaya.yaml \
 && grep -q '^  metrics_addr: ":6880"$' /out/chihaya.yaml \
 && /out/chihaya validate --config /out/chihaya.yaml

# An image without CA certificates would start fine and only fail at the
# first https fetch, so a build stage without them fails here instead.
RUN test -s /etc/ssl/certs/ca-certificates.crt \
 && grep -q 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt

FROM scratch

ARG VERSION=""
ARG COMMIT=""
LABEL org.opencontainers.image.title="chihaya" \
      org.opencontainers.image.description="BitTorrent tracker (HTTP and UDP)" \
      org.opencontainers.image.source="https://github.com/chihaya/chihaya" \
      org.opencontainers.image.licenses="BSD-2-Clause" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"

COPY --from=build /out/chihaya /usr/local/bin/chihaya
COPY --from=build /out/chihaya.yaml /etc/chihaya.yaml
# Go's crypto/x509 reads this path first on Linux (the Debian layout); no
# SSL_CERT_FILE is needed.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

# A numeric user (scratch has no /etc/passwd), the one distroless calls
# "nonroot"; Kubernetes' runAsNonRoot can verify a numeric user.
USER 65532:65532

# 6969: HTTP and UDP tracker; 8000: the WebTorrent (WebSocket) tracker when
# the configuration sets websocket.addr: ":8000"; 6880: /metrics, /healthz,
# /readyz.
EXPOSE 6969/tcp 6969/udp 8000/tcp 6880/tcp

ENTRYPOINT ["/usr/local/bin/chihaya"]
CMD ["--config", "/etc/chihaya.yaml", "--json"]
