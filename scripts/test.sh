#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run): formatting, vet,
# the race-detected unit tests, the end-to-end tests with real BitTorrent
# clients, and a short bounded run of every fuzz target.
#
# Usage: scripts/test.sh         everything
#        scripts/test.sh fuzz    only the fuzz targets (make fuzz)
#
# Environment:
#   CI=true            a missing client or server fails its tests instead of
#                      skipping them
#   FUZZ_BUDGET=180    seconds of fuzzing shared by all fuzz targets (0 skips)
#   FUZZ_MAX=10        at most this many seconds per fuzz target
set -euo pipefail

cd "$(dirname "$0")/.."

FUZZ_BUDGET=${FUZZ_BUDGET:-180}
FUZZ_MAX=${FUZZ_MAX:-10}

# The programs the end-to-end tests drive, as Debian packages.
PACKAGES=(aria2 transmission-cli qbittorrent-nox python3-libtorrent mktorrent)
# The deployment checks (scripts/check-dist.sh) build the image with buildah.
PACKAGES+=(buildah busybox-static)
# The browser tests (e2e/browser) drive Debian's chromium with playwright-core
# under node, inside a network namespace they make with ip.
PACKAGES+=(chromium iproute2)
# Node.js and npm from Debian unless the machine has them already: an image
# that ships its own Node.js (with its own npm) conflicts with Debian's npm.
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)
if [[ -d storage/redis ]]; then
	PACKAGES+=(redis-server redis-sentinel redis-tools) # redis-tools: redis-cli, which builds the test clusters
fi

# install_packages, step, print_results: see scripts/lib.sh.
source scripts/lib.sh
trap 'print_results summary' EXIT

check_gofmt() {
	local out
	out=$(gofmt -l .)
	if [[ -n $out ]]; then
		echo "gofmt: these files need formatting (gofmt -w):"
		echo "$out"
		return 1
	fi
}

# fuzz_targets prints "package target" for every fuzz target in the module.
fuzz_targets() {
	local names=() line
	while IFS= read -r line; do
		case $line in
		Fuzz*) names+=("$line") ;;
		ok*)
			local pkg n
			pkg=$(awk '{print $2}' <<<"$line")
			for n in "${names[@]}"; do
				echo "$pkg $n"
			done
			names=()
			;;
		*) names=() ;;
		esac
	done < <(go test -list '^Fuzz' ./...)
}

fuzz_all() {
	local targets
	targets=$(fuzz_targets) || return 1
	if [[ -z $targets ]]; then
		echo "no fuzz targets"
		return 0
	fi
	local n deadline=$((SECONDS + FUZZ_BUDGET)) left per
	n=$(wc -l <<<"$targets")
	echo "$n fuzz targets sharing ${FUZZ_BUDGET}s, at most ${FUZZ_MAX}s each"
	local pkg name rc=0 start log
	log=$(mktemp)
	left=$n
	while read -r pkg name; do
		# Share what is left of the budget among the targets still to run;
		# building the fuzzing binary and replaying the seed corpus cost a
		# few seconds on top of -fuzztime, hence the margin.
		per=$(((deadline - SECONDS) / left - 3))
		((per > FUZZ_MAX)) && per=$FUZZ_MAX
		((per < 2)) && per=2
		left=$((left - 1))
		start=$SECONDS
		echo "fuzz $pkg $name for ${per}s"
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "${per}s" "$pkg" </dev/null >"$log" 2>&1; then
			results+=("$(printf 'ok    %4ds  fuzz %s %s' $((SECONDS - start)) "$pkg" "$name")")
		elif grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
			# Go before 1.27 may report the end of -fuzztime itself as a
			# failure when a worker is mid-input (golang/go#75804); a real
			# crash always writes its input to testdata/fuzz/.
			results+=("$(printf 'ok    %4ds  fuzz %s %s (spurious deadline failure, golang/go#75804)' $((SECONDS - start)) "$pkg" "$name")")
		else
			cat "$log"
			results+=("$(printf 'FAIL  %4ds  fuzz %s %s' $((SECONDS - start)) "$pkg" "$name")")
			rc=1
		fi
	done <<<"$targets"
	rm -f "$log"
	return $rc
}

case ${1:-} in
"") ;;
fuzz)
	step "fuzz (${FUZZ_BUDGET}s budget)" fuzz_all
	exit $failed
	;;
*)
	echo "usage: $0 [fuzz]" >&2
	exit 2
	;;
esac

if [[ $(id -u) == 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null; then
	step "apt-get install (only what is missing)" install_packages
fi
# npm packages of the browser tests, pinned by package-lock.json. Install
# scripts stay off: node-datachannel's downloads from outside the registry
# and fails, and nothing here needs it (the browsers bring WebRTC).
npm_ci() {
	(cd e2e/browser && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
}
step "npm ci (e2e/browser)" npm_ci
step "gofmt -l" check_gofmt
step "go vet ./..." go vet ./...
# Operators run the tracker, or embed its packages, on other systems too:
# what a library user imports and the daemon must build for Windows,
# FreeBSD (whose build constraints are macOS's too: unix, not Linux) and
# 32-bit Linux (no tests run there; the Linux-only tools and test helpers
# are left out). About 85 s of CPU per system with an empty build cache.
cross_build() {
	local os pkgs=(. ./bittorrent/... ./frontend/... ./middleware/... ./pkg/... ./storage ./storage/memory/... ./storage/redis ./cmd/chihaya)
	for os in windows freebsd; do
		echo "GOOS=$os"
		GOOS=$os go build "${pkgs[@]}" || return 1
	done
	echo "GOARCH=386"
	GOARCH=386 go build "${pkgs[@]}"
}
step "cross-build (windows, freebsd, linux/386)" cross_build
# The end-to-end tests build and run the daemon under the race detector
# too: it costs them next to nothing (e2e/clients takes 30-50 s on 2 cores
# either way; the time goes to client start-up and to Transmission's 10 s
# rechoke timer), and a race the real clients provoke fails the test.
# -count=1: the end-to-end tests build cmd/chihaya themselves, so a cached
# pass would not notice a change to the daemon.
step "go test -race ./..." go test -race -count=1 -timeout 12m ./...
# Allocation bounds, once more without the race detector: under -race
# sync.Pool drops a quarter of its items at random, so a test that counts
# allocations per request through a pool only logs its figure there.
alloc_tests() {
	local pkgs
	mapfile -t pkgs < <(grep -rl --include='*_test.go' 'AllocsPerRun' . | xargs -n1 dirname | sort -u)
	go test -count=1 -run 'Alloc' "${pkgs[@]}"
}
step "allocation bounds (no -race)" alloc_tests
step "dist checks" ./scripts/check-dist.sh
if ((FUZZ_BUDGET > 0)); then
	step "fuzz (${FUZZ_BUDGET}s budget)" fuzz_all
fi
exit $failed
