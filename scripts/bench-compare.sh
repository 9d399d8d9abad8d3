#!/usr/bin/env bash
# bench-compare.sh: our tracker side by side with opentracker, on loopback.
#
# Both trackers run pinned to one CPU (TRACKER_CPU), the load generator
# (cmd/chihaya-bench) to another (BENCH_CPU). Both are prefilled with the
# same peers, then every mode runs against each tracker in turn, PAIRS times
# (the order alternates), and a table gives the median and spread of each
# and the ratio ours/opentracker. Two last phases measure memory on fresh
# instances: RSS growth after announcing MEM_TORRENTS x MEM_PEERS peers,
# round-robin over the torrents as a restarted tracker sees its clients
# come back (memory), RSS growth after STEADY_TORRENTS x STEADY_PEERS
# peers and then STEADY_DURATION of UDP announces with the workload's
# churn of starts, stops and completions (steady), and RSS growth per idle
# keep-alive HTTP connection with IDLE_CONNS of them open (idle).
#
# Usage: scripts/bench-compare.sh            full run (~12 minutes)
#        QUICK=1 scripts/bench-compare.sh    small sizes (~2 minutes)
# Every size is a variable below; set it in the environment to change it.
# Results: a table on stdout; raw JSON lines and logs in OUT_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${QUICK:-0}" == 1 ]]; then
	: "${DURATION:=2s}" "${PAIRS:=3}"
	: "${TORRENTS:=10000}" "${PREFILL_PEERS:=20}"       # 200,000 peers
	: "${MEM_TORRENTS:=10000}" "${MEM_PEERS:=10}"        # 100,000 peers
	: "${STEADY_TORRENTS:=1000}" "${STEADY_PEERS:=200}" "${STEADY_DURATION:=5s}" # 200,000 peers
else
	: "${DURATION:=10s}" "${PAIRS:=3}"
	: "${TORRENTS:=10000}" "${PREFILL_PEERS:=200}"      # 2,000,000 peers
	: "${MEM_TORRENTS:=100000}" "${MEM_PEERS:=10}"       # 1,000,000 peers
	: "${STEADY_TORRENTS:=10000}" "${STEADY_PEERS:=200}" "${STEADY_DURATION:=40s}" # 2,000,000 peers
fi
# PHASES picks what runs: throughput, memory, steady, idle (all by default).
: "${PHASES:=throughput memory steady idle}"
# Idle keep-alive HTTP connections of the idle phase, and how long after
# opening them RSS is read.
: "${IDLE_CONNS:=10000}" "${IDLE_SETTLE:=20}"

: "${SEED:=1}"
: "${TRACKER_CPU:=1}" "${BENCH_CPU:=0}"
# On a shared machine, other processes on the pinned CPUs take turns with
# the trackers: a single-threaded tracker loses more of its CPU to them
# than a multi-threaded one. Raising the priority of everything measured
# keeps the comparison fair (root only; NICE=0 turns it off).
if [[ $(id -u) == 0 ]]; then : "${NICE:=-10}"; else : "${NICE:=0}"; fi
: "${TRACKERS:=chihaya opentracker}"
: "${MODES:=udp-announce:8 udp-announce:128 udp-scrape http-announce http-announce:new-conn http-scrape}"
: "${OUT_DIR:=$(mktemp -d /tmp/bench-compare.XXXXXX)}"
mkdir -p "$OUT_DIR"
# opentracker drops its privileges to nobody, who must read the whitelist.
chmod 755 "$OUT_DIR"
RESULTS="$OUT_DIR/results.jsonl"
: >"$RESULTS"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools ---------------------------------------------------------------
need_pkgs=()
command -v opentracker >/dev/null || need_pkgs+=(opentracker)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v taskset >/dev/null || need_pkgs+=(util-linux)
if ((${#need_pkgs[@]})); then
	[[ $(id -u) == 0 ]] || die "missing ${need_pkgs[*]}: install them (Debian: apt-get install ${need_pkgs[*]})"
	log "installing ${need_pkgs[*]} from Debian"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
(($(nproc) >= 2)) || log "warning: $(nproc) CPU: tracker and generator share it, figures mean little"

BIN="$OUT_DIR/bin"
mkdir -p "$BIN"
log "building chihaya-bench"
go build -o "$BIN/chihaya-bench" ./cmd/chihaya-bench
BENCH=(nice -n "$NICE" taskset -c "$BENCH_CPU" "$BIN/chihaya-bench")
PIN=(nice -n "$NICE" taskset -c "$TRACKER_CPU")
if [[ " $TRACKERS " == *" chihaya "* ]]; then
	log "building chihaya"
	if ! go build -o "$BIN/chihaya" ./cmd/chihaya 2>"$OUT_DIR/chihaya-build.log"; then
		log "warning: ./cmd/chihaya does not build (see $OUT_DIR/chihaya-build.log); measuring opentracker alone"
		TRACKERS=${TRACKERS//chihaya/}
	fi
fi

# opentracker's Debian build only serves whitelisted torrents: list every
# hash either phase announces (the load torrents are the first of them).
WHITELIST="$OUT_DIR/whitelist.txt"
"$BIN/chihaya-bench" hashes --seed "$SEED" --torrents $((TORRENTS > MEM_TORRENTS ? TORRENTS : MEM_TORRENTS)) >"$WHITELIST"

# --- trackers ------------------------------------------------------------
declare -A PID UDP HTTP
# CHIHAYA_B names a second build of the daemon, measured as the tracker
# "chihaya-b" (TRACKERS="chihaya chihaya-b opentracker"): an A/B of two
# trees side by side, in the same minutes.
CHIHAYA_BIN=${CHIHAYA_B:-}
# STARTED, cleanup at exit, rss_kib, cpu_ticks, TICK: see scripts/benchlib.sh.
source scripts/benchlib.sh

# wait_udp waits until a tracker accepts UDP announces (opentracker
# refuses them until it has read its whitelist). The probe starts peer 0
# of torrent 0, which every fill announces anyway.
wait_udp() {
	local addr=$1
	for _ in $(seq 50); do
		if "$BIN/chihaya-bench" udp-announce --target "$addr" --seed "$SEED" --count 1 --sockets 1 --torrents 1 \
			--peers 1 --events 1,0,0,0 --numwant 0 --timeout 200ms --duration 1s >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

start_opentracker() { # name
	local name=$1 port
	port=$("$BIN/chihaya-bench" freeport)
	# opentracker runs as nobody and needs the whitelist's absolute path.
	"${PIN[@]}" opentracker -i 127.0.0.1 -p "$port" -P "$port" \
		-w "$WHITELIST" >"$OUT_DIR/$name.log" 2>&1 &
	PID[$name]=$!
	STARTED+=("${PID[$name]}")
	UDP[$name]=127.0.0.1:$port
	HTTP[$name]=127.0.0.1:$port
	wait_udp "${UDP[$name]}" || die "$name did not answer on ${UDP[$name]} (log: $OUT_DIR/$name.log)"
}

start_chihaya() { # name
	local name=$1 cfg="$OUT_DIR/$1.yaml" logf="$OUT_DIR/$1.log"
	cat >"$cfg" <<-EOF
		chihaya:
		  announce_interval: 30m
		  min_announce_interval: 15m
		  metrics_addr: 127.0.0.1:0
		  http:
		    addr: 127.0.0.1:0
		    enable_keepalive: true
		    read_timeout: 5s
		    write_timeout: 5s
		    idle_timeout: ${HTTP_IDLE_TIMEOUT:-30s}
		    max_numwant: 200
		    default_numwant: 50
		    max_scrape_infohashes: 74
		  udp:
		    addr: 127.0.0.1:0
		    max_numwant: 200
		    default_numwant: 50
		    max_scrape_infohashes: 74
		  storage:
		    name: memory
		    config:
		      gc_interval: 3m
		      peer_lifetime: 31m
		      shard_count: 1024
		      prometheus_reporting_interval: 1s
	EOF
	local bin=$BIN/chihaya
	if [[ $name == *chihaya-b ]]; then
		bin=${CHIHAYA_BIN:?CHIHAYA_B must name the second build for chihaya-b}
	fi
	"${PIN[@]}" "$bin" --config "$cfg" --json 2>"$logf" >/dev/null &
	PID[$name]=$!
	STARTED+=("${PID[$name]}")
	for _ in $(seq 100); do
		UDP[$name]=$(jq -r 'select(.msg=="listening" and .frontend=="udp") | .addr' "$logf" 2>/dev/null | head -1)
		HTTP[$name]=$(jq -r 'select(.msg=="listening" and .frontend=="http") | .addr' "$logf" 2>/dev/null | head -1)
		[[ -n ${UDP[$name]} && -n ${HTTP[$name]} ]] && break
		kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited (log: $logf)"
		sleep 0.1
	done
	[[ -n ${UDP[$name]} && -n ${HTTP[$name]} ]] || die "$name did not log its listeners (log: $logf)"
	wait_udp "${UDP[$name]}" || die "$name did not answer on ${UDP[$name]} (log: $logf)"
}

start() { # tracker name
	case $1 in
	chihaya | chihaya-b) start_chihaya "$2" ;;
	opentracker) start_opentracker "$2" ;;
	*) die "unknown tracker $1" ;;
	esac
	log "$2 (pid ${PID[$2]}) on udp ${UDP[$2]} http ${HTTP[$2]}, rss $(rss_kib "${PID[$2]}") KiB"
}

stop() { # name
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
}

fill() { # name torrents peers [fill flags]
	"${BENCH[@]}" fill --target "${UDP[$1]}" --label "$1" --seed "$SEED" --torrents "$2" --peers "$3" \
		--sockets 4 --inflight 64 --timeout 1s --duration 15m "${@:4}" | tail -1
}

# phase reports whether PHASES names $1.
phase() { [[ " $PHASES " == *" $1 "* ]]; }

# --- throughput ----------------------------------------------------------
read -r -a trackers <<<"$TRACKERS"
((${#trackers[@]})) || die "no tracker to measure"
log "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "sizes: prefill $TORRENTS x $PREFILL_PEERS, memory $MEM_TORRENTS x $MEM_PEERS, steady $STEADY_TORRENTS x $STEADY_PEERS then $STEADY_DURATION, $PAIRS pairs of $DURATION, out $OUT_DIR"
log "phases: $PHASES"

phase throughput || MODES=""
for t in "${trackers[@]}"; do
	[[ -n $MODES ]] || break
	start "$t" "$t"
	log "prefilling $t with $((TORRENTS * PREFILL_PEERS)) peers"
	fill "$t" "$TORRENTS" "$PREFILL_PEERS" >"$OUT_DIR/prefill-$t.json" || die "prefill of $t failed: $(cat "$OUT_DIR/prefill-$t.json")"
	log "  $(jq -r '"\(.fill_acked) peers at \(.responses_per_s|floor)/s"' "$OUT_DIR/prefill-$t.json"), rss $(rss_kib "${PID[$t]}") KiB"
done

run_mode() { # tracker mode pair
	local t=$1 mode=${2%%:*} opt=${2#*:} args=() addr before after json
	[[ $opt == "$2" ]] && opt=""
	case $mode in
	udp-*) addr=${UDP[$t]}; args=(--sockets 4 --inflight "${opt:-8}") ;;
	http-*) addr=${HTTP[$t]}; args=(--conns 16); [[ $opt == new-conn ]] && args+=(--new-conn) ;;
	esac
	before=$(cpu_ticks "${PID[$t]}")
	json=$("${BENCH[@]}" "$mode" --target "$addr" --label "$t" --seed "$SEED" --torrents "$TORRENTS" \
		--peers "$PREFILL_PEERS" --duration "$DURATION" --timeout 500ms "${args[@]}" | tail -1) || true
	after=$(cpu_ticks "${PID[$t]}")
	[[ -n $json ]] || json='{"responses":0,"responses_per_s":0}'
	jq -c --arg t "$t" --arg m "$2" --argjson pair "$3" --argjson cpu "$(((after - before)))" --argjson tick "$TICK" \
		'. + {tracker: $t, case: $m, pair: $pair, tracker_cpu_s: ($cpu / $tick),
		  responses_per_tracker_cpu_s: (if $cpu > 0 then .responses / ($cpu / $tick) else 0 end)}' \
		<<<"$json" >>"$RESULTS"
	log "  $(tail -1 "$RESULTS" | jq -r '"\(.tracker) \(.case): \(.responses_per_s|floor)/s, tracker cpu \(.tracker_cpu_s)s, errors \(.errors_total // "?")"')"
}

for pair in $(seq "$PAIRS"); do
	[[ -n $MODES ]] || break
	log "pair $pair of $PAIRS"
	order=("${trackers[@]}")
	# Rotate the order each pair, so that no tracker always runs first.
	for _ in $(seq $(((pair - 1) % ${#trackers[@]}))); do order=("${order[@]:1}" "${order[0]}"); done
	for m in $MODES; do
		for t in "${order[@]}"; do run_mode "$t" "$m" "$pair"; done
	done
done
for t in "${trackers[@]}"; do
	[[ -n $MODES ]] || break
	log "$t after the runs: rss $(rss_kib "${PID[$t]}") KiB"
	stop "$t"
done

# --- memory --------------------------------------------------------------
MEM="$OUT_DIR/memory.jsonl"
: >"$MEM"
for t in "${trackers[@]}"; do
	phase memory || break
	start "$t" "mem-$t"
	sleep 1
	before=$(rss_kib "${PID[mem-$t]}")
	fill "mem-$t" "$MEM_TORRENTS" "$MEM_PEERS" --round-robin >"$OUT_DIR/memfill-$t.json" || die "memory fill of $t failed"
	sleep 2
	after=$(rss_kib "${PID[mem-$t]}")
	peers=$((MEM_TORRENTS * MEM_PEERS))
	jq -nc --arg t "$t" --argjson b "$before" --argjson a "$after" --argjson n "$peers" \
		'{tracker: $t, phase: "fresh fill, round-robin", peers: $n, rss_before_kib: $b, rss_after_kib: $a, bytes_per_peer: ((($a - $b) * 1024) / $n)}' >>"$MEM"
	log "  $(tail -1 "$MEM")"
	stop "mem-$t"
done

# --- steady state ----------------------------------------------------------
# A fresh instance is filled, then announced to with the workload's event
# mix (starts, regular announces, completions, stops over the same pools),
# so peers leave and come back while the count stays near the fill's.
for t in "${trackers[@]}"; do
	phase steady || break
	start "$t" "steady-$t"
	sleep 1
	before=$(rss_kib "${PID[steady-$t]}")
	fill "steady-$t" "$STEADY_TORRENTS" "$STEADY_PEERS" >"$OUT_DIR/steadyfill-$t.json" || die "steady-state fill of $t failed"
	filled=$(rss_kib "${PID[steady-$t]}")
	"${BENCH[@]}" udp-announce --target "${UDP[steady-$t]}" --label "steady-$t" --seed "$SEED" --torrents "$STEADY_TORRENTS" \
		--peers "$STEADY_PEERS" --duration "$STEADY_DURATION" --timeout 500ms --sockets 4 --inflight 8 | tail -1 >"$OUT_DIR/steady-$t.json" || true
	sleep 2
	after=$(rss_kib "${PID[steady-$t]}")
	peers=$((STEADY_TORRENTS * STEADY_PEERS))
	jq -nc --arg t "$t" --argjson b "$before" --argjson f "$filled" --argjson a "$after" --argjson n "$peers" --arg d "$STEADY_DURATION" \
		'{tracker: $t, phase: "steady state after \($d) of churn", peers: $n, rss_before_kib: $b, rss_filled_kib: $f, rss_after_kib: $a, bytes_per_peer: ((($a - $b) * 1024) / $n)}' >>"$MEM"
	log "  $(tail -1 "$MEM")"
	stop "steady-$t"
done

# --- memory per idle HTTP connection --------------------------------------
# IDLE_CONNS keep-alive connections (chihaya-bench http-idle: one announce
# on each, then held open), RSS of a fresh instance before and after.
# opentracker closes every connection after its reply, so it holds none;
# "established" counts what the tracker holds open when RSS is read.
IDLE="$OUT_DIR/idle.jsonl"
: >"$IDLE"
for t in "${trackers[@]}"; do
	phase idle || break
	HTTP_IDLE_TIMEOUT=10m start "$t" "idle-$t"
	sleep 1
	before=$(rss_kib "${PID[idle-$t]}")
	"$BIN/chihaya-bench" http-idle --target "${HTTP[idle-$t]}" --seed "$SEED" --torrents "$TORRENTS" \
		--conns "$IDLE_CONNS" --duration "$((IDLE_SETTLE + 20))s" --timeout 30s >"$OUT_DIR/idle-$t.json" 2>&1 &
	idler=$!
	STARTED+=("$idler")
	sleep "$IDLE_SETTLE"
	after=$(rss_kib "${PID[idle-$t]}")
	open=$(ss -Htn state established "( sport = :${HTTP[idle-$t]##*:} )" | wc -l)
	kill "$idler" 2>/dev/null || true
	wait "$idler" 2>/dev/null || true
	jq -nc --arg t "$t" --argjson b "$before" --argjson a "$after" --argjson n "$IDLE_CONNS" --argjson open "$open" \
		'{tracker: $t, connections: $n, established: $open, rss_before_kib: $b, rss_after_kib: $a,
		  bytes_per_open_connection: (if $open > 0 then (($a - $b) * 1024) / $open else null end)}' >>"$IDLE"
	log "  $(tail -1 "$IDLE")"
	stop "idle-$t"
done

# --- table ---------------------------------------------------------------
ours=${trackers[0]}
theirs=${trackers[1]:-}
echo
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (anything above ~0.5 means other work shared the CPUs)"
echo "tracker on CPU $TRACKER_CPU, generator on CPU $BENCH_CPU, nice $NICE; $PAIRS runs of $DURATION per case; prefill $((TORRENTS * PREFILL_PEERS)) peers over $TORRENTS torrents"
echo
[[ -s $RESULTS ]] && jq -rs --arg a "$ours" --arg b "$theirs" '
  def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def spread: if length == 0 then "" else "\(min|floor)-\(max|floor)" end;
  def f: if . == null then "-" else (. | floor | tostring) end;
  def ratio($x; $y): if $x == null or $y == null or $y == 0 then "-" else ($x / $y * 100 | round / 100 | tostring) end;
  group_by(.case) as $groups
  | ["case", "\($a) resp/s (min-max)", "\($b) resp/s (min-max)", "ratio", "\($a) resp/cpu-s", "\($b) resp/cpu-s", "ratio", "p99 µs \($a)/\($b)", "errors \($a)/\($b)"],
    ($groups[] | . as $g
      | ([$g[] | select(.tracker == $a)]) as $x | ([$g[] | select(.tracker == $b)]) as $y
      | ([$x[].responses_per_s] | med) as $xm | ([$y[].responses_per_s] | med) as $ym
      | ([$x[].responses_per_tracker_cpu_s] | med) as $xc | ([$y[].responses_per_tracker_cpu_s] | med) as $yc
      | [$g[0].case,
         "\($xm | f) (\([$x[].responses_per_s] | spread))",
         "\($ym | f) (\([$y[].responses_per_s] | spread))",
         ratio($xm; $ym),
         ($xc | f), ($yc | f), ratio($xc; $yc),
         "\([$x[].latency_us.p99] | med | f)/\([$y[].latency_us.p99] | med | f)",
         "\([$x[].errors_total // 0] | add // 0)/\([$y[].errors_total // 0] | add // 0)"])
  | @tsv' "$RESULTS" | column -t -s $'\t'
echo
jq -r '"memory \(.tracker), \(.phase): \(.peers) peers, RSS \(.rss_before_kib) -> \(.rss_after_kib) KiB, \(.bytes_per_peer * 10 | floor / 10) bytes/peer"' "$MEM"
echo
jq -r '"idle HTTP connections \(.tracker): \(.connections) opened, \(.established) held open, RSS \(.rss_before_kib) -> \(.rss_after_kib) KiB, \(if .bytes_per_open_connection == null then "-" else (.bytes_per_open_connection | floor | tostring) end) bytes/connection"' "$IDLE"
echo
echo "raw results: $RESULTS, $MEM, $IDLE"
