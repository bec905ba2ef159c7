#!/bin/sh
# Runs every libFuzzer target of tests/fuzz for SECONDS each (default 6), from its seed corpus
# (tests/fuzz/corpus/<name>, read only) plus a working corpus in BUILD/corpus/<name> that grows
# between runs. Fails on the first crash, leak, timeout or UB report; the input that did it is
# left in BUILD/crash-<name>-* (add it to the seed corpus with the fix).
#   usage: scripts/fuzz.sh BUILD [SECONDS] [TARGET...]
set -eu

build=$1
secs=${2:-6}
shift $(( $# < 2 ? $# : 2 ))
src=$(cd "$(dirname "$0")/.." && pwd)
targets=${*:-$(cd "$src/tests/fuzz/corpus" && ls)}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
rc=0
for t in $targets; do
	exe="$build/tests/fuzz/${t}_fuzz"
	[ -x "$exe" ] || { echo "fuzz.sh: no target $exe" >&2; exit 2; }
	work="$build/corpus/$t"
	mkdir -p "$work"
	log="$build/fuzz-$t.log"
	# -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a runaway allocation.
	if "$exe" "$work" "$src/tests/fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$build/crash-$t-" >"$log" 2>&1; then
		printf 'fuzz %-9s ok   %s\n' "$t" \
			"$(grep -aE '^stat::number_of_executed_units' "$log" | awk '{print $2 " runs"}')"
	else
		printf 'fuzz %-9s FAILED (log: %s)\n' "$t" "$log"
		grep -aE 'ERROR|runtime error|invariant broken|SUMMARY' "$log" | head -5
		rc=1
	fi
done
exit $rc
