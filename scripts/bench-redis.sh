#!/usr/bin/env bash
# bench-redis.sh: the memory store and the Redis store side by side, UDP
# announces, as issue 13 measures them: each tracker (and, for the Redis
# store, its redis-server) pinned to TRACKER_CPU, the load generator to
# BENCH_CPU. It prints responses per second and, the figure that holds on a
# shared machine, responses per CPU-second of the tracker (plus Redis),
# read from /proc before and after each run, and Redis' own time per
# announce from INFO commandstats.
#
# The load comes from BENCH_SOCKETS source ports, as from many clients.
# Both trackers run with the UDP frontend's defaults (one socket per CPU,
# batches of 32): with the Redis store the frontend answers the announces
# of a batch concurrently, so that they share one round trip to Redis
# (frontend/udp/fanout.go, storage/redis/batch.go), and no longer needs a
# socket per announce in progress. UDP_SOCKETS and UDP_BATCH override them.
#
#   scripts/bench-redis.sh              # 10,000 torrents x 20 peers, 3 runs of 10 s
#   DURATION=5s PAIRS=1 scripts/bench-redis.sh
#   PROFILE=1 scripts/bench-redis.sh    # also a CPU profile of the Redis store's tracker, first run
#   SYSCALLS=1 scripts/bench-redis.sh   # also count each tracker's system calls (perf stat), first run
#   PERF=1 scripts/bench-redis.sh       # also perf record -g each tracker (OUT_DIR/<store>.perf.data), first run
#   CLUSTER=1 scripts/bench-redis.sh    # the Redis store on a Redis Cluster of 3 masters (no replicas), all
#                                       # pinned with the tracker; Redis figures summed over the masters
#   REPORT=1m scripts/bench-redis.sh    # the Redis store's prometheus_reporting_interval (default 1s)
set -euo pipefail
cd "$(dirname "$0")/.."

TORRENTS=${TORRENTS:-10000}
PEERS=${PEERS:-20}
DURATION=${DURATION:-10s}
PAIRS=${PAIRS:-3}
BENCH_SOCKETS=${BENCH_SOCKETS:-32} # the load generator's sockets (source ports)
INFLIGHT=${INFLIGHT:-4}             # per socket: 32 x 4 = 128 in flight
UDP_SOCKETS=${UDP_SOCKETS:-0}       # the trackers' udp.sockets (0: the default, one per CPU)
UDP_BATCH=${UDP_BATCH:-0}           # the trackers' udp.batch_size (0: the default)
TRACKER_CPU=${TRACKER_CPU:-1}
BENCH_CPU=${BENCH_CPU:-0}
SEED=${SEED:-1}
PROFILE=${PROFILE:-0}
SYSCALLS=${SYSCALLS:-0}
PERF=${PERF:-0}
CLUSTER=${CLUSTER:-0}
REPORT=${REPORT:-1s} # the Redis store's prometheus_reporting_interval (its Stats: on a Cluster a script per master)
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/bench-redis.XXXXXX)}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for p in jq taskset redis-server redis-cli; do command -v $p >/dev/null || die "$p not found"; done

BIN="$OUT_DIR/bin"
mkdir -p "$BIN"
go build -o "$BIN/chihaya-bench" ./cmd/chihaya-bench
go build -o "$BIN/chihaya" ./cmd/chihaya
BENCH=(taskset -c "$BENCH_CPU" "$BIN/chihaya-bench")
PIN=(taskset -c "$TRACKER_CPU")
# STARTED, cleanup at exit, cpu_ticks, TICK: see scripts/benchlib.sh.
source scripts/benchlib.sh

# REDIS_PORTS are the servers whose figures are summed: the one Redis,
# or the masters of the cluster; REDIS_PIDS their processes.
REDIS_PORTS=() REDIS_PIDS=()
start_redis() { # extra redis-server arguments
	local port
	port=$("$BIN/chihaya-bench" freeport)
	"${PIN[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no "$@" >"$OUT_DIR/redis.$port.log" 2>&1 &
	STARTED+=("$!")
	REDIS_PORTS+=("$port") REDIS_PIDS+=("$!")
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}
if [[ $CLUSTER == 1 ]]; then
	for _ in 1 2 3; do
		start_redis --cluster-enabled yes --cluster-config-file "$OUT_DIR/nodes.$RANDOM.conf" \
			--cluster-port "$("$BIN/chihaya-bench" freeport)" --cluster-node-timeout 5000
	done
	redis-cli --cluster create "${REDIS_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$OUT_DIR/cluster-create.log" 2>&1 ||
		die "redis-cli --cluster create failed (log: $OUT_DIR/cluster-create.log)"
	for _ in $(seq 100); do
		ok=0
		for port in "${REDIS_PORTS[@]}"; do redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1)); done
		[[ $ok == 3 ]] && break
		sleep 0.2
	done
	REDIS_STORAGE=$(printf '    name: redis\n    config:\n      redis_broker: redis://127.0.0.1:1/0\n      cluster_addrs: [%s]\n      redis_max_active: 256\n      redis_max_idle: 256\n      prometheus_reporting_interval: %s' \
		"$(printf '"127.0.0.1:%s",' "${REDIS_PORTS[@]}" | sed 's/,$//')" "$REPORT")
else
	start_redis
	REDIS_STORAGE=$(printf '    name: redis\n    config:\n      redis_broker: redis://127.0.0.1:%s/0\n      redis_max_active: 256\n      redis_max_idle: 256\n      prometheus_reporting_interval: %s' "${REDIS_PORTS[0]}" "$REPORT")
fi

declare -A PID UDP METRICS
start_chihaya() { # name storage-yaml
	local name=$1 cfg="$OUT_DIR/$1.yaml" logf="$OUT_DIR/$1.log"
	printf 'chihaya:\n  announce_interval: 30m\n  min_announce_interval: 15m\n  metrics_addr: 127.0.0.1:0\n  enable_pprof: true\n  udp:\n    addr: 127.0.0.1:0\n    sockets: %s\n    batch_size: %s\n    max_numwant: 200\n    default_numwant: 50\n  storage:\n%s\n' "$UDP_SOCKETS" "$UDP_BATCH" "$2" >"$cfg"
	"${PIN[@]}" "$BIN/chihaya" --config "$cfg" --json 2>"$logf" >/dev/null &
	PID[$name]=$!
	STARTED+=("${PID[$name]}")
	for _ in $(seq 100); do
		UDP[$name]=$(jq -r 'select(.msg=="listening" and .frontend=="udp") | .addr' "$logf" 2>/dev/null | head -1)
		[[ -n ${UDP[$name]} ]] && break
		kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited (log: $logf)"
		sleep 0.1
	done
	[[ -n ${UDP[$name]} ]] || die "$name did not log its listener"
	METRICS[$name]=$(jq -r 'select(.msg=="listening" and .frontend=="metrics") | .addr' "$logf" 2>/dev/null | head -1)
}
start_chihaya memory '    name: memory'
start_chihaya redis "$REDIS_STORAGE"

for t in memory redis; do
	log "filling $t: $TORRENTS x $PEERS"
	"${BENCH[@]}" fill --target "${UDP[$t]}" --seed "$SEED" --torrents "$TORRENTS" --peers "$PEERS" \
		--sockets 4 --inflight 64 --timeout 1s --duration 10m | tail -1 >/dev/null
done

# The commandstats (every command's usec, and the announce's own
# commands') and the CPU ticks, summed over REDIS_PORTS / REDIS_PIDS.
commandstats() { for port in "${REDIS_PORTS[@]}"; do redis-cli -p "$port" info commandstats; done; }
usec() { commandstats | awk -F'usec=' '/^cmdstat_/ && !/config|info/ {split($2, a, ","); s += a[1]} END {print s + 0}'; }
top_usec() { commandstats | awk -F'usec=' '/^cmdstat_(evalsha|hrandfield|hlen|get|hset|hdel|incr):/ {split($2, a, ","); s += a[1]} END {print s + 0}'; }
redis_ticks() { local s=0; for p in "${REDIS_PIDS[@]}"; do s=$((s + $(cpu_ticks "$p"))); done; echo "$s"; }

for pair in $(seq "$PAIRS"); do
	for t in memory redis; do
		before=$(cpu_ticks "${PID[$t]}")
		rbefore=$(redis_ticks)
		for port in "${REDIS_PORTS[@]}"; do redis-cli -p "$port" config resetstat >/dev/null; done
		if [[ $PROFILE == 1 && $t == redis && $pair == 1 ]]; then
			curl -s -o "$OUT_DIR/redis-tracker.pprof" "http://${METRICS[$t]}/debug/pprof/profile?seconds=$((${DURATION%s} - 1))" &
		fi
		if [[ $SYSCALLS == 1 && $pair == 1 ]]; then
			perf stat -x, -o "$OUT_DIR/$t.syscalls.txt" -p "${PID[$t]}" \
				-e syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_pwait \
				-- sleep "$((${DURATION%s} - 1))" &
		fi
		if [[ $PERF == 1 && $pair == 1 ]]; then
			perf record -q -g -o "$OUT_DIR/$t.perf.data" -p "${PID[$t]}" -- sleep "$((${DURATION%s} - 1))" 2>/dev/null &
		fi
		json=$("${BENCH[@]}" udp-announce --target "${UDP[$t]}" --label "$t" --seed "$SEED" --torrents "$TORRENTS" \
			--peers "$PEERS" --duration "$DURATION" --timeout 500ms --sockets "$BENCH_SOCKETS" --inflight "$INFLIGHT" | tail -1)
		if [[ $SYSCALLS == 1 && $pair == 1 ]]; then
			wait $! || true
			log "$t: system calls per response: $(awk -F, -v n="$(jq .responses <<<"$json")" -v d="${DURATION%s}" \
				'$3 ~ /sys_enter/ {sub(/syscalls:sys_enter_/, "", $3); printf "%s %.3f  ", $3, $1 / (n * (d - 1) / d)}' "$OUT_DIR/$t.syscalls.txt")"
		fi
		after=$(cpu_ticks "${PID[$t]}")
		rafter=$(redis_ticks)
		all=$(usec) top=$(top_usec)
		if [[ $t == redis ]]; then
			for port in "${REDIS_PORTS[@]}"; do redis-cli -p "$port" info all; done | grep "^cmdstat_\|_processed:\|^used_cpu" >"$OUT_DIR/commandstats.$pair.txt"
		fi
		jq -c --arg t "$t" --argjson cpu $((after - before)) --argjson rcpu $((rafter - rbefore)) --argjson tick "$TICK" \
			--argjson all "$all" --argjson top "$top" '
			{store: $t, responses, responses_per_s: (.responses_per_s|floor), errors: (.errors_total // 0),
			 tracker_cpu_s: ($cpu / $tick), redis_cpu_s: ($rcpu / $tick),
			 responses_per_cpu_s: (if ($cpu + $rcpu) > 0 then (.responses / (($cpu + $rcpu) / $tick))|floor else 0 end),
			 redis_usec_per_announce: (if $t == "redis" and .responses > 0 then ($all / .responses * 100|floor) / 100 else null end),
			 redis_top_usec_per_announce: (if $t == "redis" and .responses > 0 then ($top / .responses * 100|floor) / 100 else null end)}' \
			<<<"$json" | tee -a "$OUT_DIR/results.jsonl"
	done
done
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT_DIR/results.jsonl"
