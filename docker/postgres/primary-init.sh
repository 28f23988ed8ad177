#!/usr/bin/env bash
# Mounted into the primary as /docker-entrypoint-initdb.d/10-replication.sh.
# The postgres image's entrypoint runs it once, when it initializes an empty
# data directory, as the postgres user, against a temporary server that
# listens on the Unix socket only. The entrypoint sources it when it is not
# executable, so it sets no option beyond -e, which the entrypoint has on
# anyway: a failure here fails the initialization.
#
# It does what scalelab's runner does for its primary (internal/pgserver):
# a role for streaming replication, and a pg_hba.conf rule letting replicas
# connect as that role. The image's own rule ("host all all all trust",
# from POSTGRES_HOST_AUTH_METHOD=trust) does not cover replication
# connections: the "all" database keyword never matches "replication".
set -e

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN;
SQL

cat >> "$PGDATA/pg_hba.conf" <<'HBA'

# scalelab: streaming replicas (pg_basebackup and WAL streaming) from the
# compose network, without passwords, as in the lab's local runner.
host replication replicator all trust
HBA
