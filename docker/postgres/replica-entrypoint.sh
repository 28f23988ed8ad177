#!/usr/bin/env bash
# Entrypoint of a streaming replica (postgres image, run as root), used as
#   entrypoint: ["bash", "/scalelab/replica-entrypoint.sh"]
#   command:    ["postgres", "-c", ...same settings as the primary...]
# with PRIMARY_HOST (e.g. postgres-primary) and REPLICA_NAME (e.g. replica1)
# in the environment.
#
# On the first start the data directory is empty: it makes the replica the
# way scalelab's runner does (internal/pgserver NewReplica), with
#   pg_basebackup -R -X stream -c fast -S <name>
# as the role "replicator" with application_name=<name>, so the replica shows
# up under that name in the primary's pg_stat_replication and keeps a
# physical replication slot of that name on the primary. -R writes
# standby.signal and primary_conninfo/primary_slot_name, so the server
# starts as a hot standby. The slot is created here if missing (not with
# pg_basebackup -C), so that re-creating a replica whose volume was removed
# reuses its old slot instead of failing on "already exists".
#
# On later starts PG_VERSION exists and the copy is skipped. Either way it
# then hands over to the image's entrypoint, which fixes permissions, drops
# to the postgres user and starts the server (it skips initdb, since the data
# directory is not empty).
set -euo pipefail

: "${PRIMARY_HOST:?set PRIMARY_HOST to the host name of the primary}"
: "${REPLICA_NAME:?set REPLICA_NAME to the slot and application name of this replica}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	echo "replica $REPLICA_NAME: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
	until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres -d postgres; do
		sleep 1
	done

	mkdir -p "$PGDATA"
	# pg_basebackup wants an empty directory (it removes what it wrote when
	# it fails, but not what an earlier attempt may have left).
	find "$PGDATA" -mindepth 1 -delete
	chown postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"

	gosu postgres psql -v ON_ERROR_STOP=1 --no-psqlrc -q -At \
		-h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres -d postgres \
		-v slot="$REPLICA_NAME" >/dev/null <<'SQL'
SELECT pg_create_physical_replication_slot(:'slot')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :'slot');
SQL

	echo "replica $REPLICA_NAME: pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT"
	gosu postgres pg_basebackup \
		-D "$PGDATA" \
		-d "host=$PRIMARY_HOST port=$PRIMARY_PORT user=replicator application_name=$REPLICA_NAME" \
		-R -X stream -c fast -S "$REPLICA_NAME"
	echo "replica $REPLICA_NAME: base backup done"
fi

exec docker-entrypoint.sh "$@"
