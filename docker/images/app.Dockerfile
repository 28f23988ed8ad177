# The app image: the scalelab binary, built on the host with cgo (it links
# mattn/go-sqlite3) against bookworm's glibc, copied into a bookworm base and
# run as an unprivileged user. The build context is a folder holding only
# the binary (docker/images/build.sh makes it).
ARG BASE=scalelab-base:bookworm
FROM ${BASE}
RUN groupadd --system --gid 10001 scalelab \
    && useradd --system --uid 10001 --gid scalelab --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin scalelab \
    && mkdir -p /data && chown scalelab:scalelab /data
COPY scalelab /usr/local/bin/scalelab
USER scalelab:scalelab
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["scalelab"]
CMD ["server", "--addr", "0.0.0.0:8080", "--db", "sqlite:/data/scalelab.db"]
