# scalelab — the targets are the user interface. Each says what it does and
# where its output went.
SHELL := /bin/bash
GO ?= go
BIN := bin/scalelab

# Debian packages the topologies and their tests start as real processes.
# docker.io, debootstrap and docker-compose: the container runtime, the
# images made without a registry, and the Compose test; chromium: the
# reports' page checks; the exporters: phases 3-4's dashboards.
DEB_PACKAGES := postgresql-15 redis-server redis-tools haproxy varnish pgbouncer prometheus wrk chromium docker.io debootstrap docker-compose prometheus-postgres-exporter prometheus-redis-exporter prometheus-varnish-exporter
# A command that proves each package is installed.
DEB_CHECKS := /usr/lib/postgresql/15/bin/initdb redis-server redis-cli haproxy varnishd pgbouncer prometheus wrk chromium dockerd debootstrap docker-compose prometheus-postgres-exporter prometheus-redis-exporter prometheus-varnish-exporter

.PHONY: all build test deps bench loadgen-vs-wrk fuzz compare publish phase-1 phase-2 phase-3 phase-4 clean help images test-containers dockerd

all: build

help:
	@echo "make build     build $(BIN)"
	@echo "make phase-1   run phase 1 (one process, embedded SQLite) and write a report"
	@echo "make phase-N   the same for phases 2-4 (real Postgres, Redis, HAProxy, Varnish...)"
	@echo "make capacity  find each phase's capacity under its SLO, phases 1-4 in turn (a few minutes each)"
	@echo "make compare   compare the newest run of each phase"
	@echo "make publish   re-run the published runs under reports/published (about 90 min; GROUPS=\"faults network\" for some)"
	@echo "make test      install what the tests need (make deps) and run every test"
	@echo "make bench     run the Go benchmarks"
	@echo "make loadgen-vs-wrk  CPU per request of the load generator against wrk's on a bare handler (ROUNDS=5 of DURATION=5s)"
	@echo "make regress   CI's throughput check: server vs bare handler against reports/baseline/regress.json"
	@echo "make fuzz      run every Go fuzz target for FUZZTIME each (default 30s); CI runs FUZZTIME=3s"
	@echo "make deps      install the Debian packages the topologies need (as root)"
	@echo "make images    build the container images (no registry needed) for --runtime docker"
	@echo "make test-containers  make images, then the container tests (Docker; as root it starts dockerd)"
	@echo "make dockerd   start a Docker daemon on its own socket when none answers (as root; stays up)"

build:
	@mkdir -p bin
	$(GO) build -o $(BIN) ./cmd/scalelab
	@echo "built $(BIN)"

deps:
	@missing=""; for c in $(DEB_CHECKS); do command -v $$c >/dev/null 2>&1 || [ -x $$c ] || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then echo "deps: all present ($(DEB_PACKAGES))"; exit 0; fi; \
	echo "deps: missing:$$missing"; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "deps: run 'sudo make deps' or install: apt-get install -y $(DEB_PACKAGES)" >&2; exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q && apt-get install -y -q --no-install-recommends $(DEB_PACKAGES) && \
	echo "deps: installed $(DEB_PACKAGES)"

test: deps
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run 'go mod tidy' (diff: go mod tidy -diff)" >&2; exit 1; }
	$(GO) vet ./...
	@# One package at a time: the heavy ones (lab, server/postgres, tests/flows,
	@# topologies) each start PostgreSQL, Redis and whole topologies, and two
	@# of them at once on a 2-core machine shed load and miss probe
	@# deadlines that they test (about 13 minutes in all, against 8).
	$(GO) test -count=1 -p 1 -timeout 15m ./...
	@echo "tests passed"

# The images --runtime docker and the generated Compose files use, built
# without any registry (docker/images/build.sh prints each step's time).
# WITH_DOCKER runs a command with a Docker daemon: the one that answers, or
# one started as a child for the command's duration and stopped by PID.
WITH_DOCKER := $(GO) run ./internal/dockerd/withdocker --
images:
	$(WITH_DOCKER) ./docker/images/build.sh

# Container tests: behind the `containers` build tag so that make test does
# not run them; one package at a time, since each may start its own daemon.
test-containers: deps
	$(WITH_DOCKER) bash -c './docker/images/build.sh && $(GO) test -tags containers -count=1 -p 1 -timeout 10m -run "Docker|Compose|Swarm|Ensure" ./internal/dockerd ./topologies ./lab'
	@echo "container tests passed"

# A daemon for people: started in the background on the lab's own socket
# when none answers; `export DOCKER_HOST=unix:///run/scalelab-docker.sock`.
dockerd:
	$(GO) run ./internal/dockerd/withdocker -detach

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

# The load generator against wrk (docs/loadgen.md): each tool in a process
# of its own against one bare handler, CPU time from the kernel, the median
# of ROUNDS rounds. Run it on an otherwise idle machine.
ROUNDS ?= 5
DURATION ?= 5s
loadgen-vs-wrk: deps
	$(GO) test ./loadgen -run '^TestVsWrk$$' -count=1 -v -timeout 30m -vs-wrk-rounds $(ROUNDS) -vs-wrk-duration $(DURATION)
	@echo "loadgen-vs-wrk: the table is above (method: docs/loadgen.md)"

# Go native fuzz targets, PACKAGE:TARGET. Each runs for FUZZTIME; a failure
# leaves its input under the package's testdata/fuzz/TARGET/ (commit it:
# it then runs as a regression test in make test).
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./server/httpapi:FuzzReadJSON ./server/httpapi:FuzzAPI ./server:FuzzValidate \
	./server/auth:FuzzVerifyToken ./server/auth:FuzzVerifyPassword \
	./server/sqlite:FuzzDecodeCursor ./server/postgres:FuzzDecodeCursor \
	./scenarios:FuzzParse ./topologies:FuzzParse

.PHONY: fuzz
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done; echo "fuzz: $(words $(FUZZ_TARGETS)) targets, $(FUZZTIME) each, no failures"

# CI's throughput regression check (package regress): the server's
# cached GET against a bare handler in one process, as a ratio judged
# against the committed baseline. About 25 seconds; .ci/run calls it after
# make test. Exit status 99 on a regression.
.PHONY: regress
regress: build
	@echo "regress: server/bare throughput ratio, median of 20 alternating rounds, against reports/baseline/regress.json"
	./$(BIN) regress

phase-1: build
	./$(BIN) run --phase 1 --scenario read-heavy

phase-2 phase-3 phase-4: build deps
	./$(BIN) run --phase $(subst phase-,,$@) --scenario read-heavy

# Phases 1-4 in turn, each brought up once and stepped until the SLO fails
# (cmd/scalelab/capacity.go); one report folder per phase under reports/runs.
.PHONY: capacity
capacity: build deps
	@for n in 1 2 3 4; do \
		echo ./$(BIN) capacity --phase $$n; ./$(BIN) capacity --phase $$n || exit $$?; \
	done; echo "capacity: reports under reports/runs/*-phase-N-capacity-read-heavy"

# The published runs (reports/published/README.md), re-run on this machine:
# all of them (about 90 minutes), or GROUPS="faults network" and so on.
.PHONY: publish
publish: build deps
	reports/publish.sh $(GROUPS)

# The newest read-heavy run of each phase under reports/runs, in phase order;
# with fewer than two, the checked-in runs under reports/published.
compare: build
	@runs=$$(for n in 1 2 3 4; do ls -d reports/runs/*-phase-$$n-read-heavy 2>/dev/null | sort | tail -n 1; done); \
	if [ $$(echo "$$runs" | grep -c .) -lt 2 ]; then \
		echo "compare: fewer than two runs under reports/runs; comparing reports/published"; \
		runs=$$(ls -d reports/published/phase-*-read-heavy); \
	fi; \
	echo ./$(BIN) compare $$runs; ./$(BIN) compare $$runs

clean:
	rm -rf bin
