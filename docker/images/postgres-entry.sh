#!/bin/bash
# scalelab-postgres primary NAME DATABASE [-c name=value ...]
# scalelab-postgres replica NAME PRIMARY_HOST [-c name=value ...]
# Runs as root in the infra image, makes the data directory on first start
# the way internal/pgserver does on the host, then becomes the postgres user.
#   primary: initdb, DATABASE created, pg_hba rules for the network;
#   replica: pg_basebackup -R from PRIMARY_HOST with its own slot NAME
#            (application_name NAME in pg_stat_replication).
set -euo pipefail
role=$1 name=$2 arg=$3
shift 3
PGDATA=/var/lib/postgresql/data
export PGDATA
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
as_pg() { runuser -u postgres -- "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	case $role in
	primary)
		as_pg initdb -D "$PGDATA" -U postgres --auth=trust --no-sync >/dev/null
		cat >>"$PGDATA/pg_hba.conf" <<'HBA'
# scalelab: the run's own network, without passwords (as on the host runner)
host all all 0.0.0.0/0 trust
host replication all 0.0.0.0/0 trust
HBA
		echo "CREATE DATABASE \"$arg\"" | as_pg postgres --single -D "$PGDATA" postgres >/dev/null
		;;
	replica)
		primary=$arg
		until as_pg pg_isready -q -h "$primary" -U postgres -d postgres; do sleep 0.2; done
		as_pg psql -q -At -h "$primary" -U postgres -d postgres -v ON_ERROR_STOP=1 -v slot="$name" >/dev/null <<'SQL'
SELECT pg_create_physical_replication_slot(:'slot')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :'slot');
SQL
		as_pg pg_basebackup -D "$PGDATA" -d "host=$primary user=postgres application_name=$name" \
			-R -X stream -c fast -S "$name" --no-sync
		;;
	*) echo "scalelab-postgres: role $role, want primary or replica" >&2; exit 2 ;;
	esac
fi
# setpriv execs (runuser would fork and stay as PID 1 between docker and
# postgres): the postmaster is PID 1 and gets SIGTERM (fast shutdown) itself.
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*' "$@"
