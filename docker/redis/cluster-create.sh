#!/bin/sh
# One-shot service of phase 4 (redis image): joins the six Redis nodes into
# one cluster of 3 masters with 1 replica each, as scalelab's runner does,
# then waits until every node reports cluster_state:ok. It exits 0 at once
# when the cluster already exists (a second `docker compose up`), so the app
# instances can depend on it with condition: service_completed_successfully.
#
# `redis-cli --cluster create` wants IP addresses, not host names (CLUSTER
# MEET takes an IP), so the compose service names are resolved first.
set -eu

NODES=${REDIS_CLUSTER_NODES:-"redis-node-1 redis-node-2 redis-node-3 redis-node-4 redis-node-5 redis-node-6"}
PORT=${REDIS_CLUSTER_PORT:-6379}
REPLICAS=${REDIS_CLUSTER_REPLICAS:-1}

first=${NODES%% *}

cluster_ok() { redis-cli -h "$1" -p "$PORT" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

for n in $NODES; do
	until redis-cli -h "$n" -p "$PORT" ping >/dev/null 2>&1; do
		echo "waiting for $n:$PORT"
		sleep 1
	done
done

if cluster_ok "$first"; then
	echo "redis cluster already formed"
	exit 0
fi

addrs=""
for n in $NODES; do
	case $n in
	*[!0-9.]*) ip=$(getent hosts "$n" | awk '{ print $1; exit }') ;;
	*) ip=$n ;; # already an IPv4 address
	esac
	if [ -z "$ip" ]; then
		echo "cannot resolve $n" >&2
		exit 1
	fi
	addrs="$addrs $ip:$PORT"
done

echo "creating redis cluster:$addrs (replicas per master: $REPLICAS)"
# shellcheck disable=SC2086 # $addrs is a list of words on purpose
redis-cli --cluster create $addrs --cluster-replicas "$REPLICAS" --cluster-yes

for n in $NODES; do
	tries=0
	until cluster_ok "$n"; do
		tries=$((tries + 1))
		if [ "$tries" -gt 60 ]; then
			echo "$n: cluster_state is not ok after 60 s" >&2
			redis-cli -h "$n" -p "$PORT" cluster info >&2 || true
			exit 1
		fi
		sleep 1
	done
done
echo "redis cluster ready"
