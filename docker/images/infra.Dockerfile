# The infrastructure image of the container runtime and the generated Compose
# files: Debian's own PostgreSQL 15, Redis, HAProxy, Varnish, pgbouncer and
# Prometheus, the same packages the process runtime starts on the host. No
# registry is needed: BASE is debian:bookworm where it can be pulled, else
# the local base docker/images/build.sh makes with debootstrap.
ARG BASE=scalelab-base:bookworm
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# No "main" cluster: each container initializes its own data directory.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/scalelab.conf \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends \
       postgresql-15 redis-server redis-tools haproxy varnish pgbouncer prometheus ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH
COPY postgres-entry.sh /usr/local/bin/scalelab-postgres
