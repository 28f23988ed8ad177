#!/usr/bin/env bash
# Re-runs the published runs under reports/published, one after another, as
# reports/published/README.md lists them:
#
#   reports/publish.sh [GROUP...]      (make publish GROUPS="faults network")
#
# Groups (all of them, in this order, when none is named):
#   read-heavy  read-heavy at 1,000/s on phases 1-4, no simulated network;
#               compare.html
#   network     read-heavy at 300/s on phases 1-4 under --network none,
#               proxied (the proxies with no delay: the control),
#               datacenter and internet; network-repeats (phases 3 and 4
#               twice more under none, proxied and datacenter, under
#               repeats/); then network-faults:
#   network-faults  replica-partition and cdn-origin-slow (100/s),
#               redis-slow (300/s), under a profile
#   faults      primary-pause, replica-pause, app-kill, redis-kill on phase 3,
#               three runs each (the first published in full, the others'
#               results under repeats/); primary-pause on phase 4
#               (anonymous reads through the CDN)
#   consistency redis-outage and read-after-write (250 operations/s) on
#               phase 3
#   effects     batch-write (3/s), large-records, queue-jobs on phase 4; the
#               partitioned-layout and materialized-view benchmarks on 1M users
#   runtime     read-heavy at 300/s for 20 s on phases 1-4 under each
#               runtime, side by side; at 500/s, run --target and
#               --generators 2 against a topology that scalelab up started,
#               next to scalelab run
#   capacity    scalelab capacity on phases 1-4
#
# read-heavy's own rate, 2,000/s, is more than phases 3 and 4 serve within
# its SLO on the 2-core machine the published runs come from (their measured
# capacity is 1,500 to 2,900/s there): the phases are compared at 1,000/s,
# which every phase serves, so that what differs is what each phase costs,
# not how far past its capacity it was pushed.
#
# Every run is measured on this machine with whatever else runs on it: run
# this on a quiet machine, and nothing else meanwhile. A run whose thresholds
# fail is still published (its report says which failed); a run that could
# not finish is listed at the end and the script exits 3. Logs go to
# reports/runs/publish-TIME/. Afterwards re-render the published reports
# (go test ./reports -update) and take their screenshots
# (go test ./reports -run TestPagesInChromium -update).
set -uo pipefail
cd "$(dirname "$0")/.."

bin=./bin/scalelab
pub=reports/published
rate=1000   # read-heavy's rate in the published comparisons (above)
netrate=300 # under each network profile (group_network) and each runtime
targetrate=500 # run against run --target (group_runtime)
logs=reports/runs/publish-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$logs"
broken=()

# step NAME CMD...: runs one command, its output in $logs/NAME.log. Status 99
# (a run's thresholds failed) counts as done; any other but 0 as broken.
step() {
	local name=$1
	shift
	echo "$(date -u +%H:%M:%S) $name: $*"
	"$@" >"$logs/$name.log" 2>&1
	local rc=$?
	if [ "$rc" -eq 99 ]; then
		grep -h '^threshold failed' "$logs/$name.log" | sed 's/^/  /'
	elif [ "$rc" -ne 0 ]; then
		echo "  FAILED with status $rc (log: $logs/$name.log)"
		broken+=("$name")
	fi
	return 0
}

# run OUT ARGS...: scalelab run into OUT, replacing what was there.
run() {
	local out=$1
	shift
	rm -rf "$out"
	mkdir -p "$(dirname "$out")"
	step "$(basename "$out")" "$bin" run "$@" --out "$out"
}

group_read_heavy() {
	for n in 1 2 3 4; do
		run "$pub/phase-$n-read-heavy" --phase "$n" --scenario read-heavy --rate "$rate" --network none
	done
	step compare "$bin" compare --html "$pub/compare.html" "$pub"/phase-{1,2,3,4}-read-heavy
}

group_network() {
	# At $netrate/s: the proxies that make the distance take about as
	# much CPU as the system itself, so phases 3 and 4 at read-heavy's
	# $rate/s saturate the two cores under datacenter; at $netrate/s every
	# phase keeps room, and latency shows the distance, not a queue.
	for net in none proxied datacenter internet; do
		for n in 1 2 3 4; do
			run "$pub/phase-$n-network-$net" --phase "$n" --scenario read-heavy --rate "$netrate" --network "$net"
		done
	done
	group_network_repeats
	group_network_faults
}

# Phases 3 and 4 twice more under none, proxied and datacenter, the
# profiles alternating, for the median of three rounds: their p50s move
# by a millisecond from one run to the next on two busy cores, as much as
# the distance they are compared on.
group_network_repeats() {
	for k in 2 3; do
		for n in 3 4; do
			for net in none proxied datacenter; do
				run "$pub/repeats/phase-$n-network-$net-$k" --phase "$n" --scenario read-heavy --rate "$netrate" --network "$net" --seed "$k"
				rm -f "$pub/repeats/phase-$n-network-$net-$k/report.html"
			done
		done
	done
}

# The network faults, at rates that leave the proxies room on two cores
# (the scenarios' own 300 and 500/s saturate them under a profile).
group_network_faults() {
	run "$pub/phase-3-replica-partition" --phase 3 --scenario replica-partition --network datacenter --rate 100
	run "$pub/phase-3-redis-slow" --phase 3 --scenario redis-slow --network datacenter --rate "$netrate"
	# Phase 4 under internet at $netrate/s already queued before the link
	# slowed (p99 0.4-1.4 s, 503s from Varnish): at 100/s it holds, and
	# the chart shows what the slow link costs, not a queue.
	run "$pub/phase-4-cdn-origin-slow" --phase 4 --scenario cdn-origin-slow --network internet --rate 100
}

group_faults() {
	for f in primary-pause replica-pause app-kill redis-kill; do
		run "$pub/phase-3-$f" --phase 3 --scenario "$f"
		for k in 2 3; do
			run "$pub/repeats/phase-3-$f-$k" --phase 3 --scenario "$f" --seed "$k"
			rm -f "$pub/repeats/phase-3-$f-$k/report.html"
		done
	done
	run "$pub/phase-4-primary-pause" --phase 4 --scenario primary-pause
}

group_consistency() {
	run "$pub/phase-3-redis-outage" --phase 3 --scenario redis-outage
	# read-after-write's 500 operations/s (1,000 requests/s, half of them
	# writes) is past phase 3's capacity for that mix on the published
	# machine: 250/s.
	run "$pub/phase-3-read-after-write" --phase 3 --scenario read-after-write --rate 250
}

group_effects() {
	# batch-write's 10 operations/s are 500 writes/s, more than phase 4's
	# primary takes here next to everything else: 3/s.
	run "$pub/phase-4-batch-write" --phase 4 --scenario batch-write --rate 3
	for sc in large-records queue-jobs; do
		run "$pub/phase-4-$sc" --phase 4 --scenario "$sc"
	done
	mkdir -p "$pub/benchmarks"
	step layout-reads sh -c "go test ./server/postgres -run '^\$' -bench LayoutReads -benchtime 7x -timeout 30m -args -layout-users 1000000 | tee $pub/benchmarks/layout-reads.txt"
	step stats sh -c "go test ./server/postgres -run '^\$' -bench Stats -benchtime 5x -timeout 30m -args -stats-users 1000000 | tee $pub/benchmarks/stats.txt"
}

group_runtime() {
	# The docker runs need a daemon and the images: withdocker uses the
	# daemon that answers, or starts one for this group and stops it by PID.
	if [ -z "${SCALELAB_PUBLISH_IN_DOCKER:-}" ]; then
		SCALELAB_PUBLISH_IN_DOCKER=1 step runtime go run ./internal/dockerd/withdocker -- "$0" runtime
		return
	fi
	step images ./docker/images/build.sh
	for n in 1 2 3 4; do
		for rt in process docker; do
			run "$pub/runtime/phase-$n-$rt" --phase "$n" --runtime "$rt" --scenario read-heavy --rate "$netrate" --duration 20s
			rm -f "$pub/runtime/phase-$n-$rt/report.html"
		done
	done
	# The same load from scalelab run, and from run --target (one
	# generator, then two merged) against a topology scalelab up started
	# and scalelab seed filled with the same 100,000 users.
	local dir=$pub/target topdir
	topdir=$(mktemp -d)
	chmod 755 "$topdir" # Postgres and Varnish run as their own users
	run "$dir/run" --phase 3 --scenario read-heavy --rate "$targetrate" --duration 20s
	if ! "$bin" up --phase 3 --topology-dir "$topdir" --log-level warn >"$logs/up.log" 2>&1; then
		echo "  scalelab up failed (log: $logs/up.log)"
		broken+=(up)
		return
	fi
	local entry db
	entry=$(sed -n 's#^entry: *\(http://[^/]*\)/.*#\1#p' "$logs/up.log")
	db=$(sed -n 's#^ *primary .* \(postgres://[^ ]*\)$#\1#p' "$logs/up.log")
	step seed "$bin" seed --db "$db" --users 100000
	run "$dir/target" --target "$entry" --phase 3 --scenario read-heavy --rate "$targetrate" --duration 20s
	run "$dir/target-2-generators" --target "$entry" --phase 3 --scenario read-heavy --rate "$targetrate" --duration 20s --generators 2
	step down "$bin" down --topology-dir "$topdir"
	rm -rf "$topdir"
	for r in "$dir"/*/; do rm -f "$r/report.html"; done
}

group_capacity() {
	for n in 1 2 3 4; do
		rm -rf "$pub/phase-$n-capacity"
		step "phase-$n-capacity" "$bin" capacity --phase "$n" --out "$pub/phase-$n-capacity"
	done
}

groups=("$@")
if [ ${#groups[@]} -eq 0 ]; then
	groups=(read-heavy network faults consistency effects runtime capacity)
fi
for g in "${groups[@]}"; do
	case $g in
	read-heavy | network | network-repeats | network-faults | faults | consistency | effects | runtime | capacity) ;;
	*)
		echo "publish: unknown group $g (read-heavy, network, network-repeats, network-faults, faults, consistency, effects, runtime, capacity)" >&2
		exit 2
		;;
	esac
done
echo "publish: ${groups[*]}; logs in $logs; at commit $(git rev-parse --short HEAD)"
for g in "${groups[@]}"; do
	"group_${g//-/_}"
done
if [ ${#broken[@]} -gt 0 ]; then
	echo "publish: could not finish: ${broken[*]}" >&2
	exit 3
fi
echo "publish: done; now: go test ./reports -update && go test ./reports -run TestPagesInChromium -update"
