#!/usr/bin/env bash
# Checks every deployment artefact in dist/ and the Dockerfile, without a
# container registry, a Docker engine or a Kubernetes cluster:
#
#   image     buildah builds the Dockerfile (its build stage from a local
#             base: busybox plus the host's Go toolchain, mounted), then
#             checks that `chihaya version` inside reports the version and
#             commit, that the image runs as a non-root user, that its
#             configuration validates, and that Go's crypto/x509 finds CA
#             certificates in it (for https jwk_set_url and rediss://)
#   helm      helm lint --strict and helm template, for the default values,
#             values-ha.yaml, and values-ha.yaml with values-sentinel.yaml;
#             the rendered manifests are decoded strictly into the
#             Kubernetes API types (tools/manifestcheck), the tracker
#             configuration they carry is validated by `chihaya validate`,
#             and must have request timing on for HTTP and UDP
#   systemd   systemd-analyze verify (any warning fails) and
#             systemd-analyze security --offline=true (exposure <= 2.0)
#
# The dashboard and the alert rules are checked by the Go tests
# (cmd/chihaya/dist_test.go), against a running tracker.
#
# Environment:
#   DIST_CACHE   where helm, manifestcheck and the buildah storage are kept
#                between runs (default ~/.cache/chihaya-dist)
#   VERSION      the version to build into the image (default: git describe)
#   COMMIT       the commit to build into the image (default: git rev-parse HEAD)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

HELM_VERSION=v3.22.0
# helm template checks the chart's kubeVersion against this.
KUBE_VERSION=1.33.0
MAX_EXPOSURE=2.0
# ca-certificates: the host's bundle goes into the builder base, and from
# there into the image.
PACKAGES=(buildah busybox-static ca-certificates systemd util-linux)

CACHE=${DIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chihaya-dist}
BIN=$CACHE/bin
WORK=$(mktemp -d)
mkdir -p "$BIN"

COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
GO_VERSION=$(go env GOVERSION)
BUILDER_IMAGE=localhost/chihaya-go-builder:$GO_VERSION
IMAGE=localhost/chihaya:check

# One storage for this script's images, apart from any other buildah use;
# vfs and chroot isolation need neither overlayfs nor user namespaces.
BUILDAH=(buildah --root "$CACHE/containers/storage" --runroot "$CACHE/containers/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot

# install_packages, step, print_results: see scripts/lib.sh.
source scripts/lib.sh

cleanup() {
	local pid
	for pid in $(jobs -p); do
		kill "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
	print_results "dist summary"
}
trap cleanup EXIT

# tools builds helm and manifestcheck into the cache, unless there already.
# It runs in the background while the image builds.
tools() {
	if ! "$BIN/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
		GOBIN=$BIN go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
	fi
	(cd tools && go build -o "$BIN/manifestcheck" ./manifestcheck)
}

build_binary() {
	go build -o "$WORK/chihaya" -ldflags "-X main.version=${VERSION} -X main.commit=${COMMIT}" ./cmd/chihaya
}

# builder_image makes the build stage's base without a registry: busybox
# for the shell and sed, CA certificates (for module downloads, and copied
# into the final image), and an empty /usr/local/go where the build mounts
# the host's toolchain.
builder_image() {
	if "${BUILDAH[@]}" inspect --type image "$BUILDER_IMAGE" >/dev/null 2>&1; then
		echo "cached: $BUILDER_IMAGE"
		return 0
	fi
	if ! grep -q 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt 2>/dev/null; then
		echo "no CA bundle at /etc/ssl/certs/ca-certificates.crt: install ca-certificates"
		return 1
	fi
	local c
	c=$("${BUILDAH[@]}" from scratch)
	"${BUILDAH[@]}" copy "$c" /bin/busybox /bin/busybox >/dev/null
	"${BUILDAH[@]}" copy "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
	"${BUILDAH[@]}" run "$c" -- /bin/busybox sh -c \
		'/bin/busybox --install -s /bin && mkdir -p /tmp /root /usr/local/go /go && chmod 1777 /tmp'
	"${BUILDAH[@]}" config --env PATH=/usr/local/go/bin:/go/bin:/bin --env GOPATH=/go \
		--env GOTOOLCHAIN=local --workingdir / "$c"
	"${BUILDAH[@]}" commit -q "$c" "$BUILDER_IMAGE" >/dev/null
	"${BUILDAH[@]}" rm "$c" >/dev/null
}

build_image() {
	local modcache gocache
	modcache=$(go env GOMODCACHE)
	gocache=$(go env GOCACHE)
	mkdir -p "$modcache" "$gocache"
	# The host's toolchain, module cache and build cache are mounted into
	# the build stage's RUN steps: the build reuses what the tests compiled.
	"${BUILDAH[@]}" bud --quiet --layers=false --pull=never -t "$IMAGE" \
		--build-arg GO_IMAGE="$BUILDER_IMAGE" \
		--build-arg VERSION="$VERSION" \
		--build-arg COMMIT="$COMMIT" \
		-v "$(go env GOROOT):/usr/local/go:ro" \
		-v "$modcache:/go/pkg/mod" \
		-v "$gocache:/root/.cache/go-build" \
		.
}

# CERTS is where the image keeps its CA bundle: the first file Go's
# crypto/x509 tries on Linux.
CERTS=/etc/ssl/certs/ca-certificates.crt

# build_certcheck builds a static program that loads the system roots the
# way the jwt hook's HTTP client does (no SSL_CERT_FILE or SSL_CERT_DIR) and
# prints how many there are.
build_certcheck() {
	mkdir -p "$WORK/certcheck"
	cat >"$WORK/certcheck/main.go" <<-'EOF'
		package main

		import (
			"crypto/x509"
			"fmt"
			"os"
		)

		func main() {
			pool, err := x509.SystemCertPool()
			if err != nil {
				fmt.Println("x509.SystemCertPool:", err)
				os.Exit(1)
			}
			// Deprecated for pools backed by a platform verifier; on Linux
			// the pool is read from files, so Subjects lists them.
			n := len(pool.Subjects())
			fmt.Println(n)
			if n == 0 {
				os.Exit(1)
			}
		}
	EOF
	(cd "$WORK/certcheck" && CGO_ENABLED=0 GOFLAGS= go build -o "$WORK/certcheck.bin" main.go)
}

check_image() {
	local c out user rc=0
	c=$("${BUILDAH[@]}" from --pull=never "$IMAGE") || return 1
	out=$("${BUILDAH[@]}" run "$c" -- /usr/local/bin/chihaya version)
	echo "chihaya version: $out"
	if [[ $out != "chihaya ${VERSION} (commit ${COMMIT}, "* ]]; then
		echo "want: chihaya ${VERSION} (commit ${COMMIT}, ..."
		rc=1
	fi
	"${BUILDAH[@]}" run "$c" -- /usr/local/bin/chihaya validate --config /etc/chihaya.yaml || rc=1

	user=$("${BUILDAH[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")
	echo "image user: $user"
	if [[ -z $user || $user == 0 || $user == 0:* || $user == root* ]]; then
		echo "the image must set a non-root USER"
		rc=1
	fi
	# The image has no shell: borrow busybox to ask who the process runs as.
	"${BUILDAH[@]}" copy "$c" /bin/busybox /busybox-check >/dev/null
	out=$("${BUILDAH[@]}" run "$c" -- /busybox-check id -u)
	echo "uid inside: $out"
	[[ $out != 0 ]] || rc=1

	# CA certificates, readable by the image's user, and loaded by Go.
	out=$("${BUILDAH[@]}" run "$c" -- /busybox-check sh -c \
		"test -s $CERTS && test -r $CERTS && /busybox-check grep -c 'BEGIN CERTIFICATE' $CERTS") || out=0
	echo "CA certificates in $CERTS: ${out:-0}"
	((${out:-0} > 0)) || { echo "the image needs a non-empty, readable $CERTS"; rc=1; }
	if build_certcheck; then
		"${BUILDAH[@]}" copy "$c" "$WORK/certcheck.bin" /certcheck >/dev/null
		out=$("${BUILDAH[@]}" run "$c" -- /certcheck) || rc=1
		echo "roots loaded by crypto/x509 inside: $out"
	else
		rc=1
	fi

	local label
	for label in version revision; do
		out=$("${BUILDAH[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"org.opencontainers.image.$label\"}}" "$IMAGE")
		echo "label org.opencontainers.image.$label: $out"
		case $label in
		version) [[ $out == "$VERSION" ]] || rc=1 ;;
		revision) [[ $out == "$COMMIT" ]] || rc=1 ;;
		esac
	done
	out=$("${BUILDAH[@]}" inspect --type image --format '{{range $p, $_ := .OCIv1.Config.ExposedPorts}}{{$p}} {{end}}' "$IMAGE")
	echo "exposed ports: $out"
	for p in 6969/tcp 6969/udp 8000/tcp 6880/tcp; do
		[[ " $out " == *" $p "* ]] || { echo "missing EXPOSE $p"; rc=1; }
	done
	"${BUILDAH[@]}" rm "$c" >/dev/null
	"${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
	return $rc
}

CHART=dist/helm/chihaya

# check_chart_env: values.env reaches the tracker's container.
check_chart_env() {
	check_chart env --set "env[0].name=GOGC" --set-string "env[0].value=50" || return 1
	grep -A1 -- '- name: GOGC' "$WORK/env.yaml" | grep -q 'value: "50"' || {
		echo "env: GOGC=50 is not in the rendered Deployment"
		return 1
	}
	echo "env: GOGC=50 in the rendered Deployment"
}

# check_chart NAME [helm flags]: lints, renders and validates one set of
# values.
check_chart() {
	local name=$1
	shift
	"$BIN/helm" lint --strict --kube-version "$KUBE_VERSION" "$CHART" "$@" || return 1
	"$BIN/helm" template chihaya "$CHART" --kube-version "$KUBE_VERSION" "$@" >"$WORK/$name.yaml" || return 1
	mkdir -p "$WORK/$name-config"
	"$BIN/manifestcheck" -config-dir "$WORK/$name-config" "$WORK/$name.yaml" || return 1
	local f timed
	for f in "$WORK/$name-config"/*.yaml; do
		echo "chihaya validate $(basename "$f"):"
		"$WORK/chihaya" validate --config "$f" || return 1
		# The dashboard's latency panels and ChihayaHighLatency need the
		# request duration histogram, which only timing records.
		timed=$(awk '/^  [a-z_]+:/ { sec = substr($1, 1, length($1) - 1) }
			/^    enable_request_timing: true$/ { printf "%s ", sec }' "$f")
		echo "request timing on in $(basename "$f"): ${timed:-none}"
		[[ $timed == "http udp " ]] || { echo "want enable_request_timing: true for http and udp"; return 1; }
	done
}

# check_chart_snapshot: snapshot.enabled mounts a PersistentVolumeClaim at
# /var/lib/chihaya, points storage.config.snapshot_path into it and uses
# the Recreate strategy; the configuration validates where the volume is
# mounted (a tmpfs in a private mount namespace stands in for it), and the
# default values render no claim.
check_chart_snapshot() {
	local f=$WORK/snapshot.yaml
	"$BIN/helm" lint --strict --kube-version "$KUBE_VERSION" "$CHART" --set snapshot.enabled=true || return 1
	"$BIN/helm" template chihaya "$CHART" --kube-version "$KUBE_VERSION" --set snapshot.enabled=true >"$f" || return 1
	mkdir -p "$WORK/snapshot-config"
	"$BIN/manifestcheck" -config-dir "$WORK/snapshot-config" "$f" || return 1
	local want
	for want in 'kind: PersistentVolumeClaim' 'claimName: chihaya-snapshot' 'mountPath: /var/lib/chihaya' 'type: Recreate'; do
		grep -q "$want" "$f" || { echo "snapshot.enabled: no '$want' in the rendered manifests"; return 1; }
	done
	grep -q 'snapshot_path: /var/lib/chihaya/swarms.snap' "$WORK"/snapshot-config/*.yaml || {
		echo "snapshot.enabled: storage.config.snapshot_path not set"
		return 1
	}
	if grep -q 'PersistentVolumeClaim' "$WORK/default.yaml"; then
		echo "the default values render a PersistentVolumeClaim"
		return 1
	fi
	unshare -m sh -c 'mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/chihaya &&
		for f in "$2"/*.yaml; do echo "chihaya validate $(basename "$f") (with /var/lib/chihaya):"; "$1" validate --config "$f" || exit 1; done' \
		sh "$WORK/chihaya" "$WORK/snapshot-config"
}

# check_chart_refuses: values that would deploy a broken tracker must not
# render.
check_chart_refuses() {
	local rc=0 args want out
	while IFS='|' read -r args want; do
		# shellcheck disable=SC2086 # args are several flags
		if out=$("$BIN/helm" template chihaya "$CHART" --kube-version "$KUBE_VERSION" $args 2>&1); then
			echo "helm template $args rendered; want an error: $want"
			rc=1
		elif [[ $out != *"$want"* ]]; then
			echo "helm template $args: $out"
			echo "want an error containing: $want"
			rc=1
		else
			echo "refused as expected: $args"
		fi
	done <<-'EOF'
		--set replicaCount=2|several replicas (replicaCount > 1 or autoscaling.enabled) need shared storage
		--set redis.enabled=true --set replicaCount=2|several replicas need one shared config.chihaya.udp.private_key
		--set config.chihaya.udp.addr=:1|config.chihaya.udp.addr: set by the chart from ports.udp
		--set redis.enabled=true --set redis.password=x|redis.password: needs configSecret: true
		--set portz.http=1|additional properties 'portz' not allowed
		--set snapshot.enabled=true --set redis.enabled=true|snapshot.enabled: snapshots are for the memory store
	EOF
	return $rc
}

UNIT=dist/systemd/chihaya.service

systemd_verify() {
	local out
	# verify checks that the unit's commands exist: put the binary at
	# /usr/local/bin/chihaya in a private mount namespace, leaving the
	# host's /usr/local/bin alone.
	out=$(unshare -m sh -c '
		mount -t tmpfs tmpfs /usr/local/bin &&
		cp "$1" /usr/local/bin/chihaya &&
		systemd-analyze verify --man=no "$2"' sh "$WORK/chihaya" "$ROOT/$UNIT" 2>&1) || {
		echo "$out"
		return 1
	}
	if [[ -n $out ]]; then
		echo "systemd-analyze verify warned:"
		echo "$out"
		return 1
	fi
	echo "no warnings"
}

systemd_security() {
	local out exposure
	out=$(systemd-analyze security --offline=true --no-pager "$ROOT/$UNIT" 2>&1) || true
	grep '✗' <<<"$out" || true
	exposure=$(sed -n 's/.*Overall exposure level for chihaya.service: \([0-9.]*\).*/\1/p' <<<"$out")
	if [[ -z $exposure ]]; then
		echo "$out"
		echo "no exposure level in the output"
		return 1
	fi
	echo "exposure: $exposure (at most $MAX_EXPOSURE)"
	awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'
}

if [[ $(id -u) == 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null; then
	step "apt-get install (only what is missing)" install_packages
fi

echo "version $VERSION, commit $COMMIT, $GO_VERSION; cache $CACHE"
tools >"$WORK/tools.log" 2>&1 &
tools_pid=$!

step "go build chihaya" build_binary
step "image: local builder base" builder_image
step "image: buildah bud" build_image
step "image: version, non-root user, CA certificates, labels, ports" check_image
step "systemd: verify" systemd_verify
step "systemd: security exposure <= $MAX_EXPOSURE" systemd_security

tools_wait() {
	local rc=0
	wait "$tools_pid" || rc=$?
	cat "$WORK/tools.log"
	return $rc
}
step "helm ${HELM_VERSION} and manifestcheck" tools_wait
step "helm: default values" check_chart default
step "helm: Redis/HA values" check_chart ha -f "$CHART/values-ha.yaml"
step "helm: HA values on Redis Sentinel" check_chart sentinel -f "$CHART/values-ha.yaml" -f "$CHART/values-sentinel.yaml"
step "helm: WebTorrent port" check_chart websocket --set ports.websocket=8000
step "helm: WebTorrent port, replicas on Redis (browsers meet across pods)" check_chart websocket-ha -f "$CHART/values-ha.yaml" --set ports.websocket=8000
step "helm: environment (GOGC)" check_chart_env
step "helm: snapshot volume (snapshot.enabled)" check_chart_snapshot
step "helm: refuses broken values" check_chart_refuses
step "tools: go test (manifestcheck)" bash -c 'cd tools && go vet ./... && go test ./...'

exit $failed
