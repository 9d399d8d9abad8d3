# Sourced by the scripts/bench-*.sh: the processes a benchmark starts,
# stopped by their PIDs when the script exits, and what it reads of them.

# STARTED holds the PIDs of what the script started; cleanup, at exit,
# stops each and waits for it.
STARTED=()
cleanup() {
	for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# rss_kib prints a process's resident memory in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# cpu_ticks prints a process's user+system CPU time in clock ticks, TICK
# of them a second.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
