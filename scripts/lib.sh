# Sourced by scripts/test.sh and scripts/check-dist.sh: installing their
# Debian packages, and running their checks as steps with one summary.

# install_packages installs, with apt-get, those of the Debian packages
# named in the PACKAGES array that are not installed yet, quietly; it
# needs root.
install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		echo "all installed: ${PACKAGES[*]}"
		return 0
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

results=()
failed=0

# step NAME CMD...: runs CMD, records its outcome and duration, and goes on
# with the next step either way, so that one run reports every failure.
step() {
	local name=$1
	shift
	local start=$SECONDS
	echo
	echo "==> $name"
	if "$@"; then
		results+=("$(printf 'ok    %4ds  %s' $((SECONDS - start)) "$name")")
	else
		results+=("$(printf 'FAIL  %4ds  %s' $((SECONDS - start)) "$name")")
		failed=1
	fi
}

# print_results TITLE: every step's outcome, then PASSED or FAILED.
print_results() {
	echo
	echo "==> $1 (${SECONDS}s in all)"
	local r
	for r in "${results[@]}"; do
		echo "  $r"
	done
	if ((failed)); then
		echo "FAILED"
	else
		echo "PASSED"
	fi
}
