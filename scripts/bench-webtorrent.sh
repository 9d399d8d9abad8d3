#!/usr/bin/env bash
# bench-webtorrent.sh: our WebSocket (WebTorrent) tracker side by side with
# bittorrent-tracker, the reference WebTorrent tracker (Node), on loopback.
#
# Both trackers run pinned to one CPU (TRACKER_CPU), chihaya-bench to
# another (BENCH_CPU), as in bench-compare.sh. Two phases:
#   relay   chihaya-bench ws-announce (CONNS connections in SWARMS swarms,
#           OFFERS offers an announce, each offer answered), PAIRS times per
#           tracker in alternating order; announces, offers and answers per
#           tracker CPU-second.
#   memory  chihaya-bench ws-idle opens IDLE_CONNS connections that announce
#           once and stay open; RSS growth per connection.
#
# bittorrent-tracker is installed from npm into OUT_DIR with
# npm install --ignore-scripts (its WebRTC dependency's install script
# downloads from outside the registry; the server does not need it).
#
# Usage: scripts/bench-webtorrent.sh           (~3 minutes)
# Results: a table on stdout; raw JSON lines and logs in OUT_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."

: "${DURATION:=10s}" "${PAIRS:=3}" "${CONNS:=100}" "${SWARMS:=10}" "${OFFERS:=5}" "${IDLE_CONNS:=10000}"
: "${BT_VERSION:=11.2.3}"
: "${TRACKER_CPU:=1}" "${BENCH_CPU:=0}"
if [[ $(id -u) == 0 ]]; then : "${NICE:=-10}"; else : "${NICE:=0}"; fi
: "${OUT_DIR:=$(mktemp -d /tmp/bench-webtorrent.XXXXXX)}"
mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/results.jsonl"
MEM="$OUT_DIR/memory.jsonl"
: >"$RESULTS"
: >"$MEM"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for p in node npm jq taskset; do command -v "$p" >/dev/null || die "missing $p"; done
# Each idle connection is a descriptor on both sides.
if (($(ulimit -n) < IDLE_CONNS + 100)); then ulimit -n $((IDLE_CONNS + 1000)) 2>/dev/null || die "ulimit -n below $((IDLE_CONNS + 100))"; fi

BIN="$OUT_DIR/bin"
mkdir -p "$BIN"
log "building chihaya and chihaya-bench"
go build -o "$BIN/chihaya" ./cmd/chihaya
go build -o "$BIN/chihaya-bench" ./cmd/chihaya-bench
BENCH=(nice -n "$NICE" taskset -c "$BENCH_CPU" "$BIN/chihaya-bench")
PIN=(nice -n "$NICE" taskset -c "$TRACKER_CPU")

log "installing bittorrent-tracker $BT_VERSION"
BT="$OUT_DIR/bittorrent-tracker"
mkdir -p "$BT"
echo '{"private": true, "type": "module"}' >"$BT/package.json"
(cd "$BT" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "bittorrent-tracker@$BT_VERSION" >/dev/null)
cat >"$BT/server.mjs" <<'JS'
// The server alone: the package's index also loads its client, whose
// WebRTC module was not built (--ignore-scripts).
import Server from 'bittorrent-tracker/server'
const server = new Server({ udp: false, http: false, ws: true, stats: false })
server.on('warning', () => {})
server.listen(Number(process.argv[2]), '127.0.0.1', () => console.log('listening'))
JS

declare -A PID PORT
# STARTED, cleanup at exit, rss_kib, cpu_ticks, TICK: see scripts/benchlib.sh.
source scripts/benchlib.sh

wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$1"
}

start() { # tracker name
	local port
	port=$("$BIN/chihaya-bench" freeport)
	case $1 in
	chihaya)
		cat >"$OUT_DIR/$2.yaml" <<-YAML
			chihaya:
			  websocket:
			    addr: "127.0.0.1:$port"
			    max_connections_per_ip: $((IDLE_CONNS + CONNS))
			  storage:
			    name: memory
		YAML
		"${PIN[@]}" "$BIN/chihaya" --config "$OUT_DIR/$2.yaml" >"$OUT_DIR/$2.log" 2>&1 &
		;;
	bittorrent-tracker)
		(cd "$BT" && exec "${PIN[@]}" node server.mjs "$port") >"$OUT_DIR/$2.log" 2>&1 &
		;;
	esac
	PID[$2]=$!
	PORT[$2]=$port
	STARTED+=("$!")
	wait_port "$port"
}

stop() { kill "${PID[$1]}" 2>/dev/null || true; wait "${PID[$1]}" 2>/dev/null || true; }

trackers=(chihaya bittorrent-tracker)
for t in "${trackers[@]}"; do start "$t" "$t"; done

run() { # tracker pair
	local t=$1 before after json
	before=$(cpu_ticks "${PID[$t]}")
	json=$("${BENCH[@]}" ws-announce --target "127.0.0.1:${PORT[$t]}" --label "$t" --conns "$CONNS" \
		--torrents "$SWARMS" --offers "$OFFERS" --duration "$DURATION" --timeout 5s | tail -1) || true
	after=$(cpu_ticks "${PID[$t]}")
	[[ -n $json ]] || json='{"responses":0}'
	jq -c --arg t "$t" --argjson pair "$2" --argjson cpu "$((after - before))" --argjson tick "$TICK" \
		'. + {tracker: $t, pair: $pair, tracker_cpu_s: ($cpu / $tick)}
		 | . + (if .tracker_cpu_s > 0 then {announces_per_cpu_s: (.responses / .tracker_cpu_s),
		      relayed_per_cpu_s: (((.offers_relayed // 0) + (.answers_relayed // 0)) / .tracker_cpu_s)} else {} end)' \
		<<<"$json" >>"$RESULTS"
	log "  $(tail -1 "$RESULTS" | jq -r '"\(.tracker): \(.responses // 0) announces, \(.offers_relayed // 0) offers, \(.answers_relayed // 0) answers, tracker cpu \(.tracker_cpu_s)s"')"
}

for pair in $(seq "$PAIRS"); do
	log "relay, pair $pair of $PAIRS"
	order=("${trackers[@]}")
	((pair % 2 == 0)) && order=("${trackers[1]}" "${trackers[0]}")
	for t in "${order[@]}"; do run "$t" "$pair"; done
done
for t in "${trackers[@]}"; do stop "$t"; done

for t in "${trackers[@]}"; do
	log "memory: $IDLE_CONNS idle connections to $t"
	start "$t" "mem-$t"
	sleep 1
	before=$(rss_kib "${PID[mem-$t]}")
	"$BIN/chihaya-bench" ws-idle --target "127.0.0.1:${PORT[mem-$t]}" --conns "$IDLE_CONNS" --torrents "$SWARMS" \
		--duration 60s --timeout 30s >"$OUT_DIR/idle-$t.json" 2>&1 &
	idle=$!
	# Settle after the connections are up (they all are within seconds).
	sleep 40
	after=$(rss_kib "${PID[mem-$t]}")
	kill "$idle" 2>/dev/null || true
	wait "$idle" 2>/dev/null || true
	jq -nc --arg t "$t" --argjson b "$before" --argjson a "$after" --argjson n "$IDLE_CONNS" \
		'{tracker: $t, connections: $n, rss_before_kib: $b, rss_after_kib: $a, bytes_per_connection: ((($a - $b) * 1024) / $n)}' >>"$MEM"
	log "  $(tail -1 "$MEM")"
	stop "mem-$t"
done

echo
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)'), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "trackers on CPU $TRACKER_CPU, generator on CPU $BENCH_CPU, nice $NICE; $PAIRS runs of $DURATION each; $CONNS connections in $SWARMS swarms, $OFFERS offers an announce"
echo
jq -rs '
  def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def f: if . == null then "-" else (. | floor | tostring) end;
  def spread: "\(med | f) (\(min | f)-\(max | f))";
  ["tracker", "announces/s", "announces/cpu-s (min-max)", "offers+answers/cpu-s (min-max)", "offers per announce", "p99 ms", "errors"],
  (group_by(.tracker)[] | . as $g
    | [$g[0].tracker, ([$g[].responses_per_s] | med | f), ([$g[].announces_per_cpu_s] | spread),
       ([$g[].relayed_per_cpu_s] | spread),
       ([$g[] | (.offers_relayed // 0) / (if .responses > 0 then .responses else 1 end)] | med | . * 10 | round / 10 | tostring),
       ([$g[].latency_us.p99 / 1000] | med | f), ([$g[].errors_total // 0] | add | tostring)])
  | @tsv' "$RESULTS" | column -t -s $'\t'
# The ratio of each pair's runs (same minute, same load), then of the medians.
jq -rs '
  def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def r2: . * 10 | round / 10 | tostring;
  [group_by(.pair)[] | (map(select(.tracker == "chihaya"))[0]) as $c | (map(select(.tracker == "bittorrent-tracker"))[0]) as $b
    | select($c.announces_per_cpu_s and $b.announces_per_cpu_s)
    | {a: ($c.announces_per_cpu_s / $b.announces_per_cpu_s), r: ($c.relayed_per_cpu_s / $b.relayed_per_cpu_s)}] as $p
  | "chihaya / bittorrent-tracker per pair: announces/cpu-s \([$p[].a | r2] | join(" ")) (median \([$p[].a] | med | r2)), offers+answers/cpu-s \([$p[].r | r2] | join(" ")) (median \([$p[].r] | med | r2))"' "$RESULTS"
echo
jq -r '"memory \(.tracker): \(.connections) idle connections, RSS \(.rss_before_kib) -> \(.rss_after_kib) KiB, \(.bytes_per_connection | floor) bytes/connection"' "$MEM"
echo
echo "raw results: $RESULTS, $MEM"
