#!/usr/bin/env bash
# make images: the images the container runtime and the generated Compose
# files use, built without any image registry.
#
#   scalelab-base:bookworm   debian:bookworm if it can be pulled, else made
#                            once with debootstrap (minbase) + docker import
#   scalelab-infra:local     Debian's PostgreSQL 15, Redis, HAProxy, Varnish,
#                            pgbouncer, Prometheus
#   scalelab-app:local       bin/scalelab (built on the host), non-root
#
# Each step prints how long it took. The base is made once and reused
# (`docker rmi scalelab-base:bookworm` to make it again); the infra and app
# images are rebuilt every time from Docker's layer cache.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=scalelab-base:bookworm
INFRA=scalelab-infra:local
APP=scalelab-app:local

step_start=0
step() { step_start=$(date +%s%N); echo "images: $*"; }
took() { local ms=$((($(date +%s%N) - step_start) / 1000000)); printf 'images: %s took %d.%d s\n' "$1" $((ms / 1000)) $((ms % 1000 / 100)); }
have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! docker version >/dev/null 2>&1; then
	echo "images: no Docker daemon answers (DOCKER_HOST=${DOCKER_HOST:-default}); start one, e.g. 'make dockerd'" >&2
	exit 1
fi

# ---- base
if have "$BASE"; then
	echo "images: $BASE exists, reused"
else
	step "base: trying to pull debian:bookworm"
	if timeout 30 docker pull -q debian:bookworm >/dev/null 2>&1; then
		docker tag debian:bookworm "$BASE"
		took "pull debian:bookworm"
	else
		echo "images: debian:bookworm cannot be pulled; making $BASE with debootstrap"
		# The mirror this machine's apt uses (the first deb.debian.org-style
		# URI of the main archive in sources.list(.d)).
		mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
			| grep -oE '^(URIs:|deb)[[:space:]]+[^ ]+' | awk '{print $2}' | grep -v security | head -n 1 || true)
		[ -n "$mirror" ] || { echo "images: no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }
		command -v debootstrap >/dev/null || { echo "images: debootstrap is missing: run 'make deps'" >&2; exit 1; }
		root=$(mktemp -d /var/tmp/scalelab-base.XXXXXX)
		trap 'rm -rf "$root"' EXIT
		step "base: debootstrap --variant=minbase bookworm from $mirror"
		debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
		took "debootstrap"
		step "base: docker import"
		rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
		tar -C "$root" -c . | docker import - "$BASE" >/dev/null
		took "docker import"
		rm -rf "$root"
		trap - EXIT
	fi
fi

# ---- infra: always built; Docker's layer cache keeps the apt-get layer,
# so only a changed Dockerfile or entry script costs time. REBUILD=1
# refetches the packages.
step "infra: docker build (apt-get installs PostgreSQL 15, Redis, HAProxy, Varnish, pgbouncer, Prometheus; cached after the first time)"
DOCKER_BUILDKIT=0 docker build -q ${REBUILD:+--no-cache} --build-arg BASE="$BASE" -t "$INFRA" -f docker/images/infra.Dockerfile docker/images >/dev/null
took "infra build"

# ---- app: always rebuilt, the binary changes with every commit
step "app: go build (cgo, bookworm glibc) and docker build"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
# No -trimpath or -ldflags: the build shares Go's cache with make build.
CGO_ENABLED=1 ${GO:-go} build -o "$ctx/scalelab" ./cmd/scalelab
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$BASE" -t "$APP" -f docker/images/app.Dockerfile "$ctx" >/dev/null
took "app build"
docker image ls --format 'images: {{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^images: scalelab-(base|infra|app):" || true
