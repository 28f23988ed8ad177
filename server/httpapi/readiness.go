package httpapi

import (
	"net/http"

	"scalelab/server"
)

// Readiness has two levels, so that a load balancer keeps an instance that
// can still serve reads while the primary database is out:
//
//   - GET /readyz is 200 while the instance can serve reads: the primary
//     answers, or (it does not, and) a replica is usable; the body says
//     which, {"status":"ready","primary":"up"} or
//     {"status":"ready","primary":"down","writes":"unavailable"}. Reads are
//     then served by replicas and caches, and writes fail fast with 503
//     and Retry-After. It is 503 while draining, or when neither the
//     primary nor any replica can serve.
//   - GET /readyz?write=1 is 200 only while writes can be served too (the
//     primary answers): for checks that route writes.
//
// HAProxy checks plain /readyz (topologies/templates/haproxy.cfg.tmpl).

// readServer is a store that can serve reads without its primary (with
// read replicas): postgres.DB.
type readServer interface {
	ServesReads() bool
}

// servesReads reports whether store can serve reads without its primary.
func servesReads(store server.Store) bool {
	rs, ok := store.(readServer)
	return ok && rs.ServesReads()
}

// writeReadOnlyReady answers a readiness check while only reads can be
// served.
func writeReadOnlyReady(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(`{"status":"ready","primary":"down","writes":"unavailable"}`))
}
